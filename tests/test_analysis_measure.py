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
