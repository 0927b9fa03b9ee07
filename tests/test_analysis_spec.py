"""Spec files: JSON, TOML and YAML load into networks; bad specs name layer and field."""

import json

import pytest

from analysis import spec
from analysis.errors import SpecError
from analysis.network import analyse

TINY = {
    "name": "tiny", "input": [3, 32, 32],
    "layers": [
        {"op": "conv", "name": "stem", "out_channels": 16, "kernel": 3, "padding": "same"},
        {"op": "add", "name": "res1", "branches": [
            [{"op": "conv", "name": "c1", "out_channels": 16, "kernel": 3, "padding": 1},
             {"op": "act", "kind": "relu"}],
            []]},
        {"op": "concat", "name": "cat", "branches": [
            {"layers": [{"op": "pointwise", "out_channels": 8}]},
            {"layers": [{"op": "depthwise", "kernel": [3, 3], "padding": [[1, 1], [1, 1]]}]}]},
        {"op": "sequential", "name": "head", "layers": [
            {"op": "global_avgpool"}, {"op": "flatten"},
            {"op": "linear", "name": "fc", "out_features": 10}]},
    ],
}

TINY_TOML = """
name = "tiny"
input = [3, 32, 32]

[[layers]]
op = "conv"
name = "stem"
out_channels = 16
kernel = 3
padding = "same"

[[layers]]
op = "add"
name = "res1"
branches = [
  [{op = "conv", name = "c1", out_channels = 16, kernel = 3, padding = 1},
   {op = "act", kind = "relu"}],
  [],
]

[[layers]]
op = "concat"
name = "cat"
[[layers.branches]]
layers = [{op = "pointwise", out_channels = 8}]
[[layers.branches]]
layers = [{op = "depthwise", kernel = [3, 3], padding = [[1, 1], [1, 1]]}]

[[layers]]
op = "sequential"
name = "head"
layers = [{op = "global_avgpool"}, {op = "flatten"}, {op = "linear", name = "fc", out_features = 10}]
"""


def _summary(network):
    a = analyse(network)
    return [(r.name, r.op, r.output_shape, r.params.total) for r in a.rows]


def test_json_and_toml_specs_describe_the_same_network(tmp_path):
    (tmp_path / "tiny.json").write_text(json.dumps(TINY))
    (tmp_path / "tiny.toml").write_text(TINY_TOML)
    from_json = spec.load(str(tmp_path / "tiny.json"))
    from_toml = spec.load(str(tmp_path / "tiny.toml"))
    assert _summary(from_json) == _summary(from_toml)
    rows = _summary(from_json)
    assert rows[-1] == ("head.fc", "linear", (10,), 24 * 10 + 10)
    assert ("cat", "concat", (24, 32, 32), 0) in rows
    assert ("res1", "add", (16, 32, 32), 0) in rows


def test_yaml_spec_when_pyyaml_is_installed(tmp_path):
    yaml = pytest.importorskip("yaml")
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    assert _summary(spec.load(str(tmp_path / "tiny.yaml"))) == _summary(
        spec.network_from_dict(TINY))


def test_yaml_without_pyyaml_is_a_clear_error(monkeypatch):
    import builtins
    real_import = builtins.__import__

    def no_yaml(name, *args, **kwargs):
        if name == "yaml":
            raise ImportError("no yaml")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_yaml)
    with pytest.raises(SpecError, match="PyYAML"):
        spec.parse_text("layers: []", "yaml")


def _with_layer(layer):
    return {"input": [3, 16, 16], "layers": [layer]}


@pytest.mark.parametrize("data,layer,field,match", [
    (_with_layer({"op": "convolution", "name": "x"}), "x", "op", "unknown op 'convolution'"),
    (_with_layer({"op": "conv", "name": "x", "out_channels": 4, "kernal": 3}), "x", "kernal",
     "unknown field for 'conv'"),
    (_with_layer({"op": "conv", "name": "x", "kernel": 3}), "x", "out_channels", "needs"),
    (_with_layer({"op": "conv", "name": "x", "out_channels": "4"}), "x", "out_channels",
     "expected an integer"),
    (_with_layer({"op": "conv", "name": "x", "out_channels": 4, "bias": 1}), "x", "bias",
     "true or false"),
    (_with_layer({"op": "add", "name": "blk", "branches": []}), "blk", "branches", "non-empty"),
    (_with_layer({"op": "add", "name": "blk", "branches": [[{"op": "nope"}]]}),
     "blk.branches[0][0]", "op", "unknown op"),
    ({"input": [3, 16], "layers": []}, "", "input", r"\[C, H, W\]"),
    ({"input": [3, 16, 16]}, "", "layers", "needs a 'layers' list"),
    ({"inputs": [3, 16, 16], "layers": []}, "", "inputs", "unknown top-level field"),
    (_with_layer({"op": "conv"}), "layers[0]", "out_channels", "needs"),
])
def test_bad_specs_name_the_layer_and_field(data, layer, field, match):
    with pytest.raises(SpecError, match=match) as info:
        spec.network_from_dict(data)
    assert (info.value.layer, info.value.field) == (layer, field)


def test_impossible_layer_in_a_spec_is_reported_at_analysis_with_its_dotted_name():
    net = spec.network_from_dict({"input": [3, 8, 8], "layers": [
        {"op": "add", "name": "blk", "branches": [
            [{"op": "conv", "name": "big", "out_channels": 3, "kernel": 11}], []]}]})
    with pytest.raises(SpecError, match="kernel span 11x11") as info:
        analyse(net)
    assert (info.value.layer, info.value.field) == ("blk.0.big", "kernel")


def test_residual_with_mismatched_shapes_names_the_block():
    net = spec.network_from_dict({"input": [3, 8, 8], "layers": [
        {"op": "add", "name": "blk", "branches": [
            [{"op": "conv", "out_channels": 4, "kernel": 1}], []]}]})
    with pytest.raises(SpecError, match=r"equal shapes, got \[\[4, 8, 8\], \[3, 8, 8\]\]"):
        analyse(net)


@pytest.mark.parametrize("text,fmt,match", [
    ("{not json", "json", "cannot parse json"),
    ("layers = [", "toml", "cannot parse toml"),
    ("layers: []", "ini", "unknown spec format"),
])
def test_unparsable_files_are_one_line_errors(text, fmt, match):
    with pytest.raises(SpecError, match=match) as info:
        spec.parse_text(text, fmt)
    assert "\n" not in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(SpecError, match="cannot read"):
        spec.load(str(tmp_path / "absent.json"))
