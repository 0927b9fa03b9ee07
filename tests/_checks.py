"""The one numerical check every test uses, and small shared helpers.

Error bound, sound under cancellation
-------------------------------------
A convolution output is a sum of products ``sum_k x_k * w_k (+ b)``.  Whatever order a
kernel adds them in, the rounding error of a floating-point sum of ``n`` terms is at most
about ``n * eps * sum_k |x_k * w_k|`` (Higham, "Accuracy and Stability of Numerical
Algorithms", 3.1), and in practice ``~sqrt(n) * eps`` times that.  So the check is

    |out - ref| <= tol * (ref_abs + tiny)

where ``ref`` is the float64 reference on the same (already dtype-rounded) inputs and
``ref_abs`` is that same reference run on ``|input|``, ``|weight|``, ``|bias|``: the sum of
the absolute values of the terms, per element.  A relative check against ``|ref|`` alone
would fail spuriously wherever terms cancel to near zero; an absolute check would hide
real errors in small outputs.  ``tol`` is 2e-5 for float32 (about 170 float32 ulps; the
issue allows 1e-4) and 1e-12 for float64 (the issue allows 1e-10).  Never loosen these
to make a test pass: a failure is a finding.

Non-finite values: wherever the reference is NaN the output must be NaN, and wherever
the reference is +-Inf the output must be the same infinity.
"""

from __future__ import annotations

import numpy as np
import pytest

TOL = {np.dtype(np.float32): 2e-5, np.dtype(np.float64): 1e-12}
# Absolute floor so an exactly-zero reference (all terms zero) demands an exact zero.
TINY = {np.dtype(np.float32): 1e-30, np.dtype(np.float64): 1e-300}

DTYPES = [np.float32, np.float64]


def assert_matches(out, ref, ref_abs, dtype=None, context=""):
    """Assert ``out`` equals the float64 ``ref`` within the cancellation-sound bound.

    ``dtype`` is the computation dtype whose tolerance applies; by default the dtype of
    ``out``.  ``context`` is appended to the failure message (put the config there).
    """
    out = np.asarray(out)
    ref = np.asarray(ref, dtype=np.float64)
    ref_abs = np.asarray(ref_abs, dtype=np.float64)
    dtype = np.dtype(out.dtype if dtype is None else dtype)
    assert out.shape == ref.shape, f"shape {out.shape} != reference {ref.shape} {context}"
    tol, tiny = TOL[dtype], TINY[dtype]
    o = out.astype(np.float64)

    ref_nan = np.isnan(ref)
    out_nan = np.isnan(o)
    if (ref_nan != out_nan).any():
        idx = tuple(np.argwhere(ref_nan != out_nan)[0])
        raise AssertionError(f"NaN mismatch at {idx}: out={o[idx]!r} ref={ref[idx]!r} {context}")
    ref_inf = np.isinf(ref)
    if (np.isinf(o) != ref_inf).any() or (o[ref_inf] != ref[ref_inf]).any():
        bad = (np.isinf(o) != ref_inf) | (ref_inf & (o != ref))
        idx = tuple(np.argwhere(bad)[0])
        raise AssertionError(f"Inf mismatch at {idx}: out={o[idx]!r} ref={ref[idx]!r} {context}")

    finite = ~(ref_nan | ref_inf)
    with np.errstate(invalid="ignore", over="ignore"):
        err = np.where(finite, np.abs(o - ref), 0.0)
        allowed = tol * (np.where(finite, ref_abs, 0.0) + tiny)
    bad = err > allowed
    if bad.any():
        ratio = np.where(finite, err / allowed, 0.0)
        idx = tuple(np.unravel_index(np.argmax(ratio), ratio.shape))
        raise AssertionError(
            f"{int(bad.sum())}/{bad.size} elements outside tol={tol:g} * (ref_abs + tiny); "
            f"worst at {idx}: out={o[idx]!r} ref={ref[idx]!r} ref_abs={ref_abs[idx]!r} "
            f"err/allowed={ratio[idx]:.3g} {context}")


def check_against(fn_ref, out, args, kwargs, dtype, context=""):
    """Run a reference ``fn_ref`` on ``args`` and on their absolute values, then compare.

    ``args`` are the array arguments (None allowed, e.g. a missing bias); ``kwargs`` the
    non-array ones.
    """
    ref = fn_ref(*args, **kwargs)
    abs_args = [None if a is None else np.abs(np.asarray(a, dtype=np.float64)) for a in args]
    ref_abs = fn_ref(*abs_args, **kwargs)
    assert_matches(out, ref, ref_abs, dtype=dtype, context=context)


def require_cconv():
    """The built ``cconv`` package, or skip the module.

    A source tree without the compiled extension may still import as a namespace package
    (no ``__init__.py`` in a worktree); that is not a usable cconv.
    """
    cconv = pytest.importorskip("cconv")
    if not hasattr(cconv, "conv2d"):
        pytest.skip(f"cconv at {getattr(cconv, '__path__', '?')} is not the built package",
                    allow_module_level=True)
    return cconv


def rand(rng, shape, dtype):
    """Standard normal values rounded to ``dtype`` (the tests' inputs)."""
    return rng.standard_normal(shape).astype(dtype)


def check_case(impl, case, dtype, seed=0, **extra):
    """Run ``case`` through ``impl`` (a module with the public functions) and check it.

    The output must have the input dtype and match ``tests/reference.py`` within the
    bound above.  ``extra`` keyword arguments (e.g. ``n_threads``) go to ``impl`` only.
    Returns the output.
    """
    import reference

    rng = np.random.default_rng(seed)
    arrays = case.arrays(dtype, rng)
    out = getattr(impl, case.fn)(*arrays, **case.kwargs, **extra)
    assert isinstance(out, np.ndarray), f"{type(out)} returned for {case}"
    assert out.dtype == np.dtype(dtype), f"dtype {out.dtype} != {np.dtype(dtype)} for {case}"
    check_against(getattr(reference, case.fn), out, arrays, case.kwargs, dtype,
                  context=str(case))
    return out


def forced(op, **options):
    """A stand-in for the cconv module whose ``op`` runs with private funnel options
    forced (``algorithm=``, ``b_source=``), so every internal path meets every case."""
    import functools
    import types

    from cconv import _functional
    if op == "separable_conv2d":  # the public argument order, onto the funnel's
        def call(x, dw, pw, dw_b=None, pw_b=None, **kwargs):
            return _functional._convolution(op, x, dw, dw_b, pointwise_weight=pw,
                                            pointwise_bias=pw_b, **options, **kwargs)
        return types.SimpleNamespace(separable_conv2d=call)
    return types.SimpleNamespace(**{op: functools.partial(_functional._convolution, op,
                                                          **options)})
