"""The --measure path: cconv returns exactly the planned shapes; timing; lazy import.

Tests that run kernels skip until the compiled cconv is built (after the merge).
"""

import sys

import pytest

from analysis import measure
from analysis.errors import SpecError
from analysis.layers import Conv2d, MaxPool2d
from analysis_random_layers import random_layers


def _compiled_cconv():
    cconv = pytest.importorskip("cconv")
    if not hasattr(cconv, "conv2d"):
        pytest.skip("compiled cconv kernels are not built")
    return cconv


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_cconv_returns_the_planned_shape_for_300_random_layers(dtype):
    _compiled_cconv()
    checked = 0
    for layer, shape in random_layers(700, seed=99):
        call = measure.make_call(layer, shape, batch=2, dtype=dtype, n_threads=1)
        if call is None:  # pooling: not a cconv kernel
            continue
        out = call()
        planned = (2,) + layer.output_shape(shape)
        assert out.shape == planned, (layer, shape)
        assert str(out.dtype) == dtype
        checked += 1
    assert checked >= 300


def test_cconv_and_torch_agree_on_values_for_a_few_layers():
    _compiled_cconv()
    torch = pytest.importorskip("torch")
    import numpy as np
    for layer, shape in random_layers(40, seed=5):
        if layer.op != "conv":
            continue
        x = np.random.default_rng(0).standard_normal((1,) + shape).astype("float64")
        w = np.random.default_rng(1).standard_normal(
            (layer.out_channels, shape[0] // layer.groups) + tuple(
                (layer.kernel, layer.kernel) if isinstance(layer.kernel, int)
                else layer.kernel)).astype("float64")
        import cconv
        pads = measure._padding_arg(layer, shape)
        got = cconv.conv2d(x, w, None, layer.stride, pads, layer.dilation, layer.groups)
        (t, b), (l, r) = (pads if isinstance(pads[0], tuple) else
                          ((pads[0], pads[0]), (pads[1], pads[1])))
        xt = torch.nn.functional.pad(torch.from_numpy(x), (l, r, t, b))
        want = torch.nn.functional.conv2d(xt, torch.from_numpy(w), None, layer.stride, 0,
                                          layer.dilation, layer.groups).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)


def test_time_layer_times_convs_and_skips_pooling():
    _compiled_cconv()
    t = measure.time_layer(Conv2d("c", 8, 3, padding=1), (4, 16, 16), repeat=2, n_threads=1)
    assert t is not None and 0 < t < 5
    assert measure.time_layer(MaxPool2d("p", 2), (4, 16, 16)) is None


def test_measure_without_compiled_cconv_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "cconv", None)  # makes "import cconv" fail
    with pytest.raises(SpecError, match="--measure needs the compiled cconv"):
        measure.make_call(Conv2d("c", 8, 3), (4, 16, 16))


def test_best_time_is_the_minimum_of_the_runs():
    calls = []
    assert measure.best_time(lambda: calls.append(1), repeat=4) >= 0
    assert len(calls) == 5  # one warm-up + four timed


def test_only_cconv_shapes_is_imported_at_module_level():
    """Planning must not need the compiled kernels: module-level imports of cconv are
    limited to cconv.shapes; measure.py imports cconv inside its functions."""
    import ast
    import pathlib
    import analysis
    for path in pathlib.Path(analysis.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in tree.body:
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module]
            for name in names:
                if name.split(".")[0] == "cconv":
                    assert name == "cconv.shapes", (path.name, name)


# ---------------------------------------------------------------------------- fake backend
# Until the kernels are built, a stand-in with cconv's documented signatures (computed by
# torch) checks that the --measure path passes every argument where cconv expects it.
def _fake_cconv():
    torch = pytest.importorskip("torch")
    import types
    F = torch.nn.functional

    def pad_then(x, padding):
        if isinstance(padding, int):
            padding = (padding, padding)
        if isinstance(padding[0], int):
            padding = ((padding[0], padding[0]), (padding[1], padding[1]))
        (t, b), (l, r) = padding
        return F.pad(torch.from_numpy(x), (l, r, t, b))

    def tensor(a):
        return None if a is None else torch.from_numpy(a)

    def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *,
               padding_mode="zeros", out=None, n_threads=None):
        return F.conv2d(pad_then(input, padding), tensor(weight), tensor(bias), stride, 0,
                        dilation, groups).numpy()

    def depthwise_conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, *,
                         padding_mode="zeros", out=None, n_threads=None):
        return conv2d(input, weight, bias, stride, padding, dilation, input.shape[1])

    def pointwise_conv2d(input, weight, bias=None, stride=1, *, out=None, n_threads=None):
        return conv2d(input, weight, bias, stride)

    def separable_conv2d(input, depthwise_weight, pointwise_weight, depthwise_bias=None,
                         pointwise_bias=None, stride=1, padding=0, dilation=1, *,
                         padding_mode="zeros", out=None, n_threads=None):
        mid = depthwise_conv2d(input, depthwise_weight, depthwise_bias, stride, padding,
                               dilation)
        return pointwise_conv2d(mid, pointwise_weight, pointwise_bias)

    def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0,
                         groups=1, dilation=1, *, out=None, n_threads=None):
        return F.conv_transpose2d(tensor(input), tensor(weight), tensor(bias), stride, padding,
                                  output_padding, groups, dilation).numpy()

    return types.SimpleNamespace(**{f.__name__: f for f in (
        conv2d, depthwise_conv2d, pointwise_conv2d, separable_conv2d, conv_transpose2d)})


def test_measure_calls_match_cconv_signatures_with_a_stand_in(monkeypatch):
    monkeypatch.setitem(sys.modules, "cconv", _fake_cconv())
    checked = 0
    for layer, shape in random_layers(120, seed=3):
        call = measure.make_call(layer, shape, batch=1, dtype="float32", n_threads=1)
        if call is not None:
            assert call().shape == (1,) + layer.output_shape(shape), (layer, shape)
            checked += 1
    assert checked > 60


def test_cli_measure_columns_with_a_stand_in(monkeypatch, capsys):
    import json
    from analysis.cli import main
    monkeypatch.setitem(sys.modules, "cconv", _fake_cconv())
    assert main(["network", "dcgan_generator", "--param", "ngf=8", "--measure", "--repeat", "1",
                 "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    convt = data["layers"][0]
    assert convt["measured_ms"] > 0 and convt["gflops"] > 0
    assert data["layers"][1]["measured_ms"] is None  # batch norm: not a cconv kernel
    assert data["totals"]["measured_ms"] > 0
    assert main(["compare", "conv", "out_channels=16", "kernel=3", "padding=1", "--input",
                 "8,16,16", "--measure", "--repeat", "1", "--format", "json"]) == 0
    layer = json.loads(capsys.readouterr().out)["layers"][0]
    assert layer["standard_ms"] > 0 and layer["separable_ms"] > 0
    assert layer["measured_ratio"] == pytest.approx(layer["separable_ms"] / layer["standard_ms"])


def test_kernel_errors_become_one_line_spec_errors(monkeypatch):
    fake = _fake_cconv()

    def refuse(*args, **kwargs):
        raise ValueError("padding\nnot supported")

    fake.conv2d = refuse
    monkeypatch.setitem(sys.modules, "cconv", fake)
    with pytest.raises(SpecError, match="cconv cannot run this layer: ValueError: padding "
                                        "not supported") as info:
        measure.time_layer(Conv2d("c", 8, 3), (4, 8, 8), repeat=1)
    assert (info.value.layer, info.value.field) == ("c", "measure")


def test_cli_measure_with_the_real_kernels(capsys):
    _compiled_cconv()
    import json
    from analysis.cli import main
    import pathlib
    spec_file = pathlib.Path(__file__).parent.parent / "analysis/examples/small_resnet.toml"
    assert main(["compare", str(spec_file), "--measure", "--repeat", "1", "--threads", "1", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert all(r["standard_ms"] > 0 and r["separable_ms"] > 0 for r in data["layers"])
    assert data["totals"]["measured_ratio"] > 0
