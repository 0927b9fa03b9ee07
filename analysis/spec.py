"""Network spec files: JSON, TOML (standard library) and YAML (if PyYAML is installed).

Specs are data only (``json.load``, ``tomllib.load``, ``yaml.safe_load``)::

    {"name": "tiny", "input": [3, 32, 32],
     "layers": [
       {"op": "conv", "name": "stem", "out_channels": 16, "kernel": 3, "padding": "same"},
       {"op": "add", "name": "res1", "branches": [
          [{"op": "conv", "out_channels": 16, "kernel": 3, "padding": 1},
           {"op": "act", "kind": "relu"}],
          []]},
       {"op": "concat", "crop": true, "branches": [{"layers": [...]}, {"layers": [...]}]},
       {"op": "sequential", "name": "head", "layers": [...]}]}

A layer's ``op`` is one of :data:`analysis.layers.LAYER_TYPES` and its other keys are
that layer's fields. A block's ``op`` is ``add``, ``concat`` or ``sequential``; each
branch is a list of layers or ``{"layers": [...]}``; an empty branch is the identity.
Every problem is a :class:`SpecError` naming the layer (its name or its position) and
the field.
"""

from __future__ import annotations

import json
import os
from dataclasses import fields
from typing import Any, Dict, List, Mapping, Tuple

from .errors import SpecError
from .layers import LAYER_TYPES, Layer
from .network import BLOCK_KINDS, Block, Network, Node


def _tuplify(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_tuplify(v) for v in value)
    return value


def layer_from_dict(data: Mapping[str, Any], where: str = "") -> Layer:
    """One layer from a mapping with ``op`` and that layer's fields."""
    name = str(data.get("name", "")) or where
    if not isinstance(data, Mapping):
        raise SpecError(where, "op", f"expected a table/object, got {data!r}")
    op = data.get("op")
    if op not in LAYER_TYPES:
        raise SpecError(name, "op", f"unknown op {op!r}; expected one of "
                                    f"{', '.join(sorted(LAYER_TYPES))} or a block "
                                    f"({', '.join(BLOCK_KINDS)})")
    cls = LAYER_TYPES[op]
    known = {f.name: f for f in fields(cls) if f.name not in cls.derived_fields}
    kwargs: Dict[str, Any] = {}
    for key, value in data.items():
        if key == "op":
            continue
        if key not in known:
            raise SpecError(name, key, f"unknown field for {op!r}; expected one of "
                                       f"{', '.join(sorted(known))}")
        default = known[key].default
        if isinstance(default, bool) and not isinstance(value, bool):
            raise SpecError(name, key, f"expected true or false, got {value!r}")
        if (type(default) is int and key not in ("kernel", "stride", "padding", "dilation",
                                                 "output_padding", "scale")
                and (not isinstance(value, int) or isinstance(value, bool))):
            raise SpecError(name, key, f"expected an integer, got {value!r}")
        kwargs[key] = _tuplify(value)
    kwargs["name"] = str(data.get("name", ""))
    missing = [k for k in cls.required_fields if k not in data]
    if missing:
        raise SpecError(name, missing[0], f"{op!r} needs {missing[0]}")
    return cls(**kwargs)


def nodes_from_list(items: Any, where: str) -> Tuple[Node, ...]:
    if not isinstance(items, (list, tuple)):
        raise SpecError(where, "layers", f"expected a list of layers, got {items!r}")
    out: List[Node] = []
    for i, item in enumerate(items):
        pos = f"{where}[{i}]" if where else f"layers[{i}]"
        if not isinstance(item, Mapping):
            raise SpecError(pos, "op", f"expected a table/object, got {item!r}")
        op = item.get("op")
        if op in BLOCK_KINDS:
            out.append(block_from_dict(item, pos))
        else:
            out.append(layer_from_dict(item, pos))
    return tuple(out)


def block_from_dict(data: Mapping[str, Any], where: str) -> Block:
    name = str(data.get("name", ""))
    label = name or where
    op = data["op"]
    allowed = {"op", "name", "branches", "crop", "layers"}
    for key in data:
        if key not in allowed:
            raise SpecError(label, key, f"unknown field for block {op!r}; expected one of "
                                        f"{', '.join(sorted(allowed))}")
    if op == "sequential":
        return Block(name, op, (nodes_from_list(data.get("layers", []), label + ".layers"),))
    branches = data.get("branches")
    if not isinstance(branches, (list, tuple)) or not branches:
        raise SpecError(label, "branches", "expected a non-empty list of paths")
    paths = []
    for b, branch in enumerate(branches):
        if isinstance(branch, Mapping):
            branch = branch.get("layers", [])
        paths.append(nodes_from_list(branch, f"{label}.branches[{b}]"))
    crop = data.get("crop", False)
    if not isinstance(crop, bool):
        raise SpecError(label, "crop", f"expected true or false, got {crop!r}")
    return Block(name, op, tuple(paths), crop)


def network_from_dict(data: Mapping[str, Any], default_name: str = "spec") -> Network:
    """A :class:`Network` from parsed spec data."""
    if not isinstance(data, Mapping):
        raise SpecError("", "layers", "a spec is a table/object with 'layers'")
    for key in data:
        if key not in ("name", "input", "layers", "description"):
            raise SpecError("", key, "unknown top-level field; expected name, input, "
                                     "layers, description")
    shape = data.get("input", (3, 224, 224))
    if (not isinstance(shape, (list, tuple)) or len(shape) != 3
            or not all(isinstance(v, int) and v > 0 for v in shape)):
        raise SpecError("", "input", f"expected [C, H, W] of positive ints, got {shape!r}")
    if "layers" not in data:
        raise SpecError("", "layers", "a spec needs a 'layers' list")
    return Network(str(data.get("name", default_name)), tuple(shape),
                   nodes_from_list(data["layers"], ""), str(data.get("description", "")))


def parse_text(text: str, fmt: str, default_name: str = "spec") -> Network:
    """Parse spec ``text`` in ``fmt`` ("json", "toml" or "yaml")."""
    try:
        if fmt == "json":
            data = json.loads(text)
        elif fmt == "toml":
            import tomllib
            data = tomllib.loads(text)
        elif fmt in ("yaml", "yml"):
            try:
                import yaml
            except ImportError:
                raise SpecError("", "file", "YAML specs need PyYAML (pip install pyyaml); "
                                            "JSON and TOML work without it") from None
            data = yaml.safe_load(text)
        else:
            raise SpecError("", "file", f"unknown spec format {fmt!r}; use .json, .toml "
                                        f"or .yaml")
    except SpecError:
        raise
    except Exception as exc:  # parser errors of json/tomllib/yaml, one line each
        message = " ".join(str(exc).split())
        raise SpecError("", "file", f"cannot parse {fmt}: {message}") from None
    return network_from_dict(data, default_name)


def load(path: str) -> Network:
    """Load a spec file; the format comes from its extension."""
    ext = os.path.splitext(path)[1].lower().lstrip(".")
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise SpecError("", "file", f"cannot read {path}: {exc.strerror}") from None
    return parse_text(text, ext, os.path.splitext(os.path.basename(path))[0])


def looks_like_spec(target: str) -> bool:
    return os.path.splitext(target)[1].lower() in (".json", ".toml", ".yaml", ".yml")
