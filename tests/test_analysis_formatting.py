"""Rendered tables: golden files, printed column sums equal printed totals, formats.

Golden files live in tests/golden/. After an intended change of output, regenerate them
with::

    CCONV_REGEN_GOLDEN=1 PYTHONPATH=. python -m pytest tests/test_analysis_formatting.py

and review the diff before committing.
"""

import json
import os
import pathlib
from fractions import Fraction

import pytest

from analysis import formatting
from analysis.cli import main
from analysis.errors import SpecError

GOLDEN = pathlib.Path(__file__).parent / "golden"
REGEN = os.environ.get("CCONV_REGEN_GOLDEN") == "1"


ROOT = pathlib.Path(__file__).parent.parent


def run(capsys, *argv):
    argv = [str(ROOT / a) if a.startswith("analysis/examples/") else a for a in argv]
    assert main(argv) == 0
    return capsys.readouterr().out


CASES = {
    "network_mobilenet_v1.txt": ("network", "mobilenet_v1"),
    "network_dcgan_generator.csv": ("network", "dcgan_generator", "--format", "csv"),
    "network_dcgan_generator.json": ("network", "dcgan_generator", "--format", "json"),
    "rf_unet.txt": ("rf", "unet", "--format", "github"),
    "compare_vgg16.txt": ("compare", "vgg16"),
    "solve_map.txt": ("solve", "map", "224", "112", "--max-kernel", "5"),
    "zoo.txt": ("zoo",),
    "network_small_resnet.md": ("network", "analysis/examples/small_resnet.toml",
                                "--format", "github"),
    "rf_small_resnet.md": ("rf", "analysis/examples/small_resnet.toml", "--format", "github"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_rendered_output_matches_golden_file(capsys, name):
    out = run(capsys, *CASES[name])
    path = GOLDEN / name
    if REGEN:
        path.write_text(out)
    assert path.exists(), f"missing {path}; run with CCONV_REGEN_GOLDEN=1"
    assert out == path.read_text()


def _table(text):
    """Header and body rows of a tabulate 'outline'/'grid' table."""
    rows = [[c.strip() for c in line.strip().strip("|").split("|")]
            for line in text.splitlines() if line.startswith("|")]
    return rows[0], rows[1:]


def _int(cell):
    return int(cell.replace(",", "")) if cell else 0


@pytest.mark.parametrize("model", ["mobilenet_v1", "resnet50", "unet", "deeplabv3_aspp"])
def test_printed_column_sums_equal_printed_totals(capsys, model):
    header, body = _table(run(capsys, "network", model))
    *layers, total = body
    assert total[0] == "total"
    for column in ("params", "MACs", "FLOPs", "bias adds", "out bytes", "bytes"):
        i = header.index(column)
        assert sum(_int(r[i]) for r in layers) == _int(total[i]), column


def test_compare_totals_row_is_the_whole_network(capsys):
    header, body = _table(run(capsys, "compare", "mobilenet_v1", "--param", "separable=false",
                              "--bn-params", "none"))
    total = body[-1]
    assert total[0] == "total (14 replaced)"
    assert _int(total[header.index("std MACs")]) == 4_867_293_184


def test_json_is_one_object_with_layers_and_totals(capsys):
    data = json.loads(run(capsys, "network", "resnet50", "--format", "json"))
    for key in ("name", "op", "input_shape", "output_shape", "params", "macs", "flops",
                "rf_size", "rf_stride", "rf_padding"):
        assert key in data["layers"][0], key
    assert data["layers"][0]["input_shape"] == [1, 3, 224, 224]
    assert data["layers"][-1]["rf_size"] == [619, 619]
    assert data["totals"]["params"] == 25_557_032
    assert data["totals"]["flops"] == 2 * data["totals"]["macs"]


def test_fractional_receptive_fields_become_floats_in_json(capsys):
    data = json.loads(run(capsys, "rf", "dcgan_generator", "--format", "json"))
    assert data["layers"][0]["rf_stride"] == [1, 1]
    assert data["layers"][-1]["rf_stride"] == [0.0625, 0.0625]


def test_any_tabulate_format_and_bad_format(capsys):
    assert run(capsys, "network", "dcgan_generator", "--format", "latex").count("\\\\") > 5
    with pytest.raises(SpecError, match="unknown format 'excel'"):
        formatting.check_format("excel")


def test_cells():
    assert formatting.cell(1234567) == "1,234,567"
    assert formatting.cell([3, 3]) == "3"
    assert formatting.cell([3, 5]) == "3x5"
    assert formatting.cell(Fraction(1, 2)) == "0.5"
    assert formatting.cell(None) == ""
    assert formatting.number(Fraction(6, 3)) == 2


def test_readme_section_generator_runs_every_command():
    import importlib.util
    path = ROOT / "analysis" / "examples" / "readme_section.py"
    spec = importlib.util.spec_from_file_location("readme_section", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = module.main(measure=False)
    assert "| conv 1x1      |       13 | 3,139,584 |      74.59 |" in text
    assert "cconv-plan: error: layer 'conv', field 'kernel'" in text
    assert "Traceback" not in text


def test_shapes_print_every_dimension(capsys):
    out = run(capsys, "shape", "linear", "out_features=1", "--input", "1,1,1")
    assert "| 1x1x1x1 " in out and "| 1x1 " in out
