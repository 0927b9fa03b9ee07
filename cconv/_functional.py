"""The public convolution functions: thin wrappers over one private funnel.

``_convolution`` normalises and validates (``_params.normalize``), picks the algorithm
(``_dispatch.select_algorithm``), applies a non-zero padding mode by padding once in
Python, allocates the output from the shared shape arithmetic, and runs the kernel.
"""

from __future__ import annotations

import functools

import numpy as np

from cconv import _depthwise, _dispatch, _igemm, _pointwise, _separable, _winograd
from cconv._dispatch import Algorithm, select_algorithm, winograd_applies
from cconv._params import ConvParams, normalize

_NUMPY_PAD_MODE = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}
_NO_PADDING = ((0, 0), (0, 0))
_WINOGRAD = (Algorithm.WINOGRAD, Algorithm.WINOGRAD_WIDE)  # the two F(2x2, 3x3) modes
_TRANSPOSED = (Algorithm.TRANSPOSED_PHASES, Algorithm.TRANSPOSED_COL2IM)
_SEPARABLE = (Algorithm.SEPARABLE_FUSED, Algorithm.SEPARABLE_TWO_PASS)

# Shared parameter documentation, written once (scipy's _ni_docstrings habit).
_DOCS = {
    "input": """input : array_like, shape (N, C_in, H, W) or (C_in, H, W)
        float32 or float64. An unbatched input gives an unbatched output.""",
    "stride": """stride : int or (int, int), default 1
        Step of the kernel over the input, (sh, sw).""",
    "padding": """padding : int, (int, int), 'valid', 'same' or ((top, bottom), (left, right))
        Implicit padding. 'same' keeps ceil(size / stride) outputs; the odd pixel goes
        bottom/right (torch at stride 1, TensorFlow at every stride).""",
    "dilation": """dilation : int or (int, int), default 1
        Spacing between kernel taps.""",
    "padding_mode": """padding_mode : {'zeros', 'reflect', 'replicate', 'circular'}
        How the border is filled, as torch.nn.Conv2d.""",
    "out": """out : ndarray, optional
        C-contiguous array of the result's shape and dtype that receives the result.""",
    "n_threads": """n_threads : int, optional
        None = process default (cconv.get_num_threads()); a positive count; a negative
        count back from the number of usable cores (-1 = all). 0 is an error.""",
    "returns": """Returns
    -------
    ndarray
        The result, of the input's dtype (``out`` itself when given).""",
}


def _doc(text: str) -> str:
    for key, value in _DOCS.items():
        text = text.replace("{" + key + "}", value)
    return text


def _pad_input(x: np.ndarray, p: ConvParams) -> np.ndarray:
    (pt, pb), (pl, pr) = p.padding
    return np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)), mode=_NUMPY_PAD_MODE[p.padding_mode])


def _build_gemm_plan(transposed, x_shape, w_shape, out_shape, stride, padding, dilation,
                     groups, b_source):
    build = _igemm.conv_transpose2d_plan if transposed else _igemm.conv2d_plan
    return build(x_shape, w_shape, out_shape, stride, padding, dilation, groups,
                 b_source=b_source)


# Plans depend only on shapes and arguments; building one costs 50-100 us of Python
# (tap tables, work lists), which dominated small layers. Shared between calls and
# threads (a plan is read-only but for its per-thread-count work cache). A plan holds a
# few index tables of K entries (at most about 0.5 MB, for ASPP's 2048-channel 3x3), so
# 128 of them stay small; a network has a few dozen distinct layer shapes. Layer objects
# keep private plans instead: they also hold packed weights.
_shared_gemm_plan = functools.lru_cache(maxsize=128)(_build_gemm_plan)


def _gemm_plan(plan_cache, transposed, x_shape, w_shape, out_shape, stride, padding,
               dilation, groups, b_source=None):
    """A GEMM plan: from a layer object's own cache when it has one, else shared."""
    args = (transposed, x_shape, w_shape, out_shape, stride, padding, dilation, groups,
            b_source)
    if plan_cache is None:
        return _shared_gemm_plan(*args)
    plan = plan_cache.get(args)
    if plan is None:
        plan = plan_cache[args] = _build_gemm_plan(*args)
    return plan


def _family_runs_op(algorithm: Algorithm, p: ConvParams) -> bool:
    """Whether a forced kernel family can run p's op at all (a transposed weight read by
    a conv's plan, or the reverse, would read and write past the arrays)."""
    if p.op == "separable_conv2d":
        return algorithm in _SEPARABLE
    if algorithm in _SEPARABLE:
        return False
    if algorithm is Algorithm.DIRECT_TILES:        # runs both kinds of plan
        return True
    if (algorithm in _TRANSPOSED) != (p.op == "conv_transpose2d"):
        return False
    if algorithm is Algorithm.DEPTHWISE:
        return p.groups == p.C_in and p.C_out % p.C_in == 0
    return True


def _convolution(op: str, input, weight, bias=None, plan_cache=None, b_source=None,
                 algorithm=None, **kwargs):
    """The funnel. ``plan_cache`` (a dict owned by a layer object) keeps GEMM plans per
    input shape, so repeated calls skip planning. ``b_source`` ('direct' / 'channels'
    / 'packed') forces how the GEMM engine reads its input and ``algorithm`` which kernel family
    runs (both for tests, so that every path meets every case; None chooses)."""
    p, a = normalize(op, input, weight, bias, **kwargs)
    if algorithm is None:
        algorithm = select_algorithm(p)
        if algorithm in _WINOGRAD and b_source is not None:
            algorithm = Algorithm.IMPLICIT_GEMM  # forcing how the GEMM reads B forces it
        elif algorithm is Algorithm.POINTWISE_TILES and b_source is not None:
            algorithm = Algorithm.POINTWISE
        elif algorithm is Algorithm.DIRECT_TILES and b_source is not None:
            algorithm = (Algorithm.TRANSPOSED_PHASES if p.op == "conv_transpose2d"
                         else Algorithm.IMPLICIT_GEMM)
    elif not _family_runs_op(algorithm, p):
        raise ValueError(f"{algorithm} cannot run {p}")
    elif algorithm in _WINOGRAD and not winograd_applies(p):
        raise ValueError(f"the Winograd engine cannot run {p}")
    elif algorithm is Algorithm.POINTWISE_TILES and not (p.kernel == (1, 1) and p.zero_padding):
        raise ValueError(f"the 1x1 register-tile engine cannot run {p}")
    elif algorithm is Algorithm.DIRECT_TILES and p.op not in ("conv2d", "pointwise_conv2d",
                                                              "conv_transpose2d"):
        raise ValueError(f"the register-tile engine runs conv2d and conv_transpose2d only, "
                         f"not {p}")
    out = a["out"]
    if out is None:
        out = np.empty(p.output_shape, dtype=p.dtype)
    x, padding = a["x"], p.padding
    if p.padding_mode != "zeros" and not p.zero_padding:
        x, padding = _pad_input(x, p), _NO_PADDING

    if p.output_shape[0] == 0:
        pass  # an empty batch: nothing to compute
    elif algorithm is Algorithm.SEPARABLE_FUSED:
        _separable.separable_forward(x, a["w"], a["b"], a["pw"], a["pw_b"], out, p.stride,
                                     padding, p.dilation, p.n_threads)
    elif algorithm is Algorithm.SEPARABLE_TWO_PASS:
        N, _, H_out, W_out = p.output_shape
        mid = np.empty((N, p.mid_channels, H_out, W_out), dtype=p.dtype)
        _depthwise.depthwise_forward(x, a["w"], a["b"], mid, p.stride, padding, p.dilation,
                                     p.n_threads)
        pw = a["pw"].reshape(a["pw"].shape[0], p.mid_channels, 1, 1)
        _unit_gemm(mid, pw, a["pw_b"], out, 1, p.n_threads, plan_cache, b_source)
    elif algorithm is Algorithm.TRANSPOSED_COL2IM:
        _transposed_col2im(p, x, a["w"], a["b"], out, plan_cache, b_source)
    elif algorithm is Algorithm.POINTWISE_TILES:
        _pointwise_tiles(x, a["w"], a["b"], out, p.stride, p.groups, p.n_threads)
    elif algorithm is Algorithm.DIRECT_TILES:
        _direct_tiles(p, x, a["w"], a["b"], out, padding, plan_cache)
    elif algorithm is Algorithm.DEPTHWISE:
        _depthwise.depthwise_forward(x, a["w"], a["b"], out, p.stride, padding, p.dilation,
                                     p.n_threads)
    elif algorithm in _WINOGRAD and _winograd_conv(p, x, a["w"], a["b"], out, padding,
                                                   plan_cache, algorithm):
        pass
    else:
        # (Also where the Winograd engine gave a non-finite output: the direct sum
        # decides which non-finite values the result has.)
        plan = _gemm_plan(plan_cache, algorithm is Algorithm.TRANSPOSED_PHASES, x.shape,
                          a["w"].shape, p.output_shape, p.stride, padding, p.dilation,
                          p.groups, b_source)
        _igemm.run(plan, x, a["w"], a["b"], out, p.n_threads,
                   weights_frozen=plan_cache is not None)

    if a["out"] is not None:
        return kwargs["out"]
    return out if p.batched else out[0]


def _pointwise_tiles(x, w, bias, out, stride, groups, n_threads):
    """A 1x1 conv (no padding) on the register-tile engine, which reads the weights as
    given: a strided one on a dense copy of the positions it reads."""
    if tuple(stride) != (1, 1):
        x = np.ascontiguousarray(x[:, :, ::stride[0], ::stride[1]])
    N, C_in = x.shape[:2]
    _, C_out, H_out, W_out = out.shape
    _pointwise.forward(x.reshape(-1), w.reshape(-1), bias, out.reshape(-1), N, groups,
                       C_out // groups, C_in // groups, H_out * W_out, n_threads)


def _unit_gemm(x, w, bias, out, groups, n_threads, plan_cache, b_source):
    """A unit-stride 1x1 conv inside another algorithm (a separable layer's pointwise
    step, col2im's weights x pixels): on the register tiles where the build has them,
    else (or with b_source forced) on the GEMM engine, the same bits either way. Never
    weights_frozen: the caller's "weights" may be data (col2im's pixels)."""
    if b_source is None and _dispatch.TILE_ISA:
        _pointwise_tiles(x, w, bias, out, (1, 1), groups, n_threads)
        return
    plan = _gemm_plan(plan_cache, False, x.shape, w.shape, out.shape, (1, 1), _NO_PADDING,
                      (1, 1), groups, b_source)
    _igemm.run(plan, x, w, bias, out, n_threads)


def _direct_tiles(p: ConvParams, x, w, bias, out, padding, plan_cache):
    """A conv2d or transposed conv on the register-tile engine over a direct GEMM plan:
    the plan's tap offsets and zero-bordered (phase) source planes, phase by phase, the
    weights reordered to the plan's k order (tap-major: each phase's taps a run of
    columns). A layer object reorders its weights once: kept on its own plan with the
    array they came from (``Plan.tile_weights``; shared plans keep none)."""
    transposed = p.op == "conv_transpose2d"
    plan = _gemm_plan(plan_cache, transposed, x.shape, w.shape, p.output_shape, p.stride,
                      padding, p.dilation, p.groups, "direct")
    G = p.groups
    M = w.shape[1] if transposed else w.shape[0] // G
    phases = plan.phase_cols.T.tolist()
    if plan_cache is not None and plan.tile_weights is not None and plan.tile_weights[0] is w:
        weights = plan.tile_weights[1]
    else:
        tap_off, chan_stride, src_lda, src_group = plan.pack_spec
        weights = _pointwise.tap_major_weights(w.reshape(-1), tap_off, chan_stride, src_lda,
                                               src_group, G, M, plan.Cg, p.n_threads)
        if plan_cache is not None:
            plan.tile_weights = (w, weights)
    lda = len(plan.pack_spec[0]) * plan.Cg
    src = _igemm._direct_source(x, plan.direct, p.n_threads).reshape(-1)
    N, _, H_out, W_out = out.shape
    for hg, wg, dst0, drs, dcs, t0, t1, pitch in phases:
        _pointwise.direct_forward(src, plan.boff[t0 * plan.Cg:t1 * plan.Cg], weights,
                                  t0 * plan.Cg, lda, bias, out.reshape(-1), N, G, M,
                                  plan.C_in * plan.plane, plan.Cg * plan.plane, hg, wg,
                                  pitch, dst0, drs, dcs, H_out * W_out, p.n_threads)


def _winograd_conv(p: ConvParams, x, w, bias, out, padding, plan_cache, algorithm) -> bool:
    """Run the F(2x2, 3x3) engine in the mode chosen; False if an output is non-finite
    (the caller then recomputes the layer with the implicit GEMM). A layer object
    transforms its weights once (kept in its plan cache with the array they came
    from); a call without one transforms them per call, all at once (blocked) or a
    chunk of input channels at a time (wide)."""
    cached = plan_cache.get("winograd") if plan_cache is not None else None
    if cached is not None and cached[0] is w:
        U = cached[1]
    elif plan_cache is not None or algorithm is Algorithm.WINOGRAD:
        U = _winograd.pack_weights(w, p.n_threads)
        if plan_cache is not None:
            plan_cache["winograd"] = (w, U)
    else:
        U = None
    if algorithm is Algorithm.WINOGRAD_WIDE:
        return _winograd.run_wide(x, w, bias, out, padding, p.dilation, p.n_threads, U)
    return _winograd.run(x, U, bias, out, padding, p.dilation, p.n_threads)


def _transposed_col2im(p: ConvParams, x, w, bias, out, plan_cache, b_source):
    """A transposed conv with few input pixels as one GEMM and a gather.

    Per group g, Y_g = X_g^T W_g: rows the P = N*H*W input pixels, columns the
    (output channel, tap) pairs, k the group's input channels. That is a grouped 1x1
    conv whose "input" is the weight tensor viewed as (1, C_in, 1, C_out/g * kh * kw)
    and whose "weight" is the pixels, (g * P, C_in/g, 1, 1): the weights stream through
    the engine once, in place. Then every output element gathers its taps from Y.
    """
    N, C_in, H, W = x.shape
    G = p.groups
    Cg, M, KH, KW = C_in // G, w.shape[1], w.shape[2], w.shape[3]
    P, MT = N * H * W, M * KH * KW
    pixels = np.ascontiguousarray(
        x.reshape(N, G, Cg, H * W).transpose(1, 0, 3, 2)).reshape(G * P, Cg, 1, 1)
    taps = w.reshape(1, C_in, 1, MT)
    y = np.empty((1, G * P, 1, MT), dtype=x.dtype)
    # (On the register tiles where the build has them: they read the weights where they
    # lie, where the GEMM engine copied them into spread planes first, C_out * kh * kw
    # being a multiple of 256 values: 30% of DCGAN's 512 -> 256 on 4x4.)
    _unit_gemm(taps, pixels, None, y, G, p.n_threads, plan_cache, b_source)
    _igemm.col2im(y.reshape(G, N, H, W, M, KH, KW), bias, out, p.stride, p.padding,
                  p.dilation, p.n_threads)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *,
           padding_mode="zeros", out=None, n_threads=None):
    return _convolution("conv2d", input, weight, bias, stride=stride, padding=padding,
                        dilation=dilation, groups=groups, padding_mode=padding_mode, out=out,
                        n_threads=n_threads)


conv2d.__doc__ = _doc("""2-D convolution (cross-correlation, as torch.nn.functional.conv2d).

    Parameters
    ----------
    {input}
    weight : array_like, shape (C_out, C_in / groups, kh, kw)
    bias : array_like, shape (C_out,), optional
    {stride}
    {padding}
    {dilation}
    groups : int, default 1
        Input and output channels are split into this many independent groups.
    {padding_mode}
    {out}
    {n_threads}

    {returns} Shape (N, C_out, H_out, W_out) with
        H_out = floor((H + top + bottom - dilation*(kh-1) - 1) / stride) + 1.
    """)


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0,
                     groups=1, dilation=1, *, out=None, n_threads=None):
    return _convolution("conv_transpose2d", input, weight, bias, stride=stride,
                        padding=padding, output_padding=output_padding, groups=groups,
                        dilation=dilation, out=out, n_threads=n_threads)


conv_transpose2d.__doc__ = _doc("""2-D transposed convolution (torch.nn.functional.conv_transpose2d).

    The gradient-shaped "inverse" of a strided conv, used to upsample. Computed as a
    gather over output pixels (each output element by exactly one thread).

    Parameters
    ----------
    {input}
    weight : array_like, shape (C_in, C_out / groups, kh, kw)
    bias : array_like, shape (C_out,), optional
    {stride}
    padding : int or (int, int), default 0
        dilation*(k-1) - padding zeros are implicitly added on each side.
    output_padding : int or (int, int), default 0
        Extra rows/columns on the bottom/right; must be smaller than stride or dilation.
    groups : int, default 1
    {dilation}
    {out}
    {n_threads}

    {returns} H_out = (H - 1)*stride - 2*padding + dilation*(kh-1) + output_padding + 1.
    """)


def depthwise_conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, *,
                     padding_mode="zeros", out=None, n_threads=None):
    return _convolution("depthwise_conv2d", input, weight, bias, stride=stride,
                        padding=padding, dilation=dilation, padding_mode=padding_mode,
                        out=out, n_threads=n_threads)


depthwise_conv2d.__doc__ = _doc("""Depthwise convolution: every channel convolved on its own.

    Equal to conv2d with groups=C_in. With a channel multiplier m the weight has
    C_in*m filters and output channel c*m + j reads input channel c.

    Parameters
    ----------
    {input}
    weight : array_like, shape (C_in * m, 1, kh, kw)
    bias : array_like, shape (C_in * m,), optional
    {stride}
    {padding}
    {dilation}
    {padding_mode}
    {out}
    {n_threads}

    {returns} Shape (N, C_in * m, H_out, W_out).
    """)


def pointwise_conv2d(input, weight, bias=None, stride=1, *, out=None, n_threads=None):
    return _convolution("pointwise_conv2d", input, weight, bias, stride=stride, out=out,
                        n_threads=n_threads)


pointwise_conv2d.__doc__ = _doc("""Pointwise (1x1) convolution: mixes channels at each position.

    Parameters
    ----------
    {input}
    weight : array_like, shape (C_out, C_in) or (C_out, C_in, 1, 1)
    bias : array_like, shape (C_out,), optional
    {stride}
    {out}
    {n_threads}

    {returns} Shape (N, C_out, ceil(H / sh), ceil(W / sw)).
    """)


def separable_conv2d(input, depthwise_weight, pointwise_weight, depthwise_bias=None,
                     pointwise_bias=None, stride=1, padding=0, dilation=1, *,
                     padding_mode="zeros", out=None, n_threads=None):
    return _convolution("separable_conv2d", input, depthwise_weight, depthwise_bias,
                        stride=stride, padding=padding, dilation=dilation,
                        padding_mode=padding_mode, out=out, n_threads=n_threads,
                        pointwise_weight=pointwise_weight, pointwise_bias=pointwise_bias)


separable_conv2d.__doc__ = _doc("""Depthwise-separable convolution: depthwise, then pointwise.

    The MobileNet building block. stride, padding, dilation and padding_mode apply to
    the depthwise stage.

    Parameters
    ----------
    {input}
    depthwise_weight : array_like, shape (C_in * m, 1, kh, kw)
    pointwise_weight : array_like, shape (C_out, C_in * m) or (C_out, C_in * m, 1, 1)
    depthwise_bias : array_like, shape (C_in * m,), optional
    pointwise_bias : array_like, shape (C_out,), optional
    {stride}
    {padding}
    {dilation}
    {padding_mode}
    {out}
    {n_threads}

    {returns} Shape (N, C_out, H_out, W_out).
    """)
