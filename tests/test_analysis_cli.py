"""The cconv-plan command line, in-process and as a process; one-line errors, exit 2."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from analysis.cli import main, parse_input, parse_value

ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(
    [os.path.dirname(os.path.dirname(os.path.abspath(__file__)))]
    + os.environ.get("PYTHONPATH", "").split(os.pathsep)))


def test_shape_of_one_layer(capsys):
    assert main(["shape", "conv", "out_channels=64", "kernel=7", "stride=2", "padding=3",
                 "--input", "3,224,224", "--format", "json"]) == 0
    layer = json.loads(capsys.readouterr().out)["layers"][0]
    assert layer["output_shape"] == [1, 64, 112, 112]
    assert layer["params"] == 64 * 3 * 49 + 64
    assert layer["rf_size"] == [7, 7]


def test_shape_of_transposed_with_output_padding(capsys):
    assert main(["shape", "conv_transpose", "out_channels=3", "kernel=3", "stride=2",
                 "padding=1", "output_padding=1", "--input", "8,7,7", "--format", "json"]) == 0
    layer = json.loads(capsys.readouterr().out)["layers"][0]
    assert layer["output_shape"] == [1, 3, 14, 14]
    assert layer["macs"] == 8 * 7 * 7 * 3 * 9  # from the input size


def test_network_resolution_and_params(capsys):
    assert main(["network", "mobilenet_v1", "--param", "width=0.5", "--input", "160",
                 "--bn-params", "none", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["input_shape"] == [1, 3, 160, 160]
    assert data["layers"][0]["output_shape"] == [1, 16, 80, 80]


def test_batch_and_dtype_scale_bytes(capsys):
    main(["network", "dcgan_generator", "--format", "json"])
    one = json.loads(capsys.readouterr().out)["totals"]
    main(["network", "dcgan_generator", "--format", "json", "--batch", "4", "--dtype", "float64"])
    four = json.loads(capsys.readouterr().out)["totals"]
    assert four["output_bytes"] == 8 * one["output_bytes"]
    assert four["macs"] == 4 * one["macs"]
    assert four["params"] == one["params"]


def test_spec_file_network_and_rf(tmp_path, capsys):
    path = tmp_path / "net.json"
    path.write_text(json.dumps({"input": [1, 28, 28], "layers": [
        {"op": "conv", "name": "c", "out_channels": 4, "kernel": 5},
        {"op": "maxpool", "name": "p", "kernel": 2},
        {"op": "flatten"}, {"op": "linear", "name": "fc", "out_features": 10}]}))
    assert main(["rf", str(path), "--format", "csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("name,op,output_shape,rf_size")
    assert lines[2] == "p,maxpool,1x4x12x12,6x6,2x2,0x0,2.5x2.5,"


def test_solve_commands(capsys):
    assert main(["solve", "padding", "32", "16", "--kernel", "3", "--stride", "2",
                 "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["rows"][0]["pad_after"] == 1
    assert main(["solve", "output-padding", "8", "--kernel", "3", "--stride", "2",
                 "--padding", "1", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["rows"][0]["output_padding"] == 1
    assert main(["solve", "map", "16", "32", "--transposed", "--max-kernel", "4"]) == 0
    assert "settings map 16 -> 32 (transposed)" in capsys.readouterr().out


@pytest.mark.parametrize("argv,message", [
    (["network", "lenet"], "network, field 'model': unknown model 'lenet'"),
    (["shape", "conv", "out_channels=8", "kernel=9", "--input", "3,4,4"],
     "layer 'conv', field 'kernel': output would be -4x-4"),
    (["shape", "conv", "kernel=3"], "layer 'conv', field 'out_channels'"),
    (["network", "vgg16", "--param", "depth=3"], "field 'param'"),
    (["network", "vgg16", "--format", "excel"], "field 'format'"),
    (["network", "vgg16", "--input", "a,b"], "field 'input'"),
    (["solve", "padding", "32"], "field 'sizes'"),
    (["network", "vgg16", "--batch", "0"], "field 'batch'"),
])
def test_errors_are_one_line_and_exit_2(capsys, argv, message):
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and message in captured.err
    assert "Traceback" not in captured.err


def test_bad_spec_file_names_layer_and_field(tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text('[[layers]]\nop = "conv"\nname = "stem"\nout_channels = 8\nkernal = 3\n')
    assert main(["network", str(path)]) == 2
    err = capsys.readouterr().err
    assert err == ("cconv-plan: error: layer 'stem', field 'kernal': unknown field for "
                   "'conv'; expected one of bias, dilation, groups, kernel, name, "
                   "out_channels, padding, stride\n")


def test_python_dash_m_runs_as_a_process():
    proc = subprocess.run([sys.executable, "-m", "analysis", "zoo", "--format", "csv"],
                          capture_output=True, text=True, env=ENV, timeout=60)
    assert proc.returncode == 0
    assert proc.stdout.splitlines()[0] == "name,description,input_shape,params,macs,parameters"


def test_process_error_exit_status_is_2_without_traceback():
    proc = subprocess.run([sys.executable, "-m", "analysis", "network", "nope.json"],
                          capture_output=True, text=True, env=ENV, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.startswith("cconv-plan: error: network, field 'file': cannot read")
    assert "Traceback" not in proc.stderr


def test_console_script_when_installed():
    exe = shutil.which("cconv-plan")
    if exe is None:
        pytest.skip("cconv-plan console script not installed (pip install -e .)")
    proc = subprocess.run([exe, "zoo", "--format", "csv"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0 and "mobilenet_v1" in proc.stdout


def test_argument_parsing_helpers():
    assert parse_value("3") == 3
    assert parse_value("3,5") == (3, 5)
    assert parse_value("[[0,1],[1,0]]") == ([0, 1], [1, 0])
    assert parse_value("same") == "same"
    assert parse_value("true") is True
    assert parse_input("224") == (224,)
    assert parse_input("3x32x32") == (3, 32, 32)


def test_network_summary_table(capsys):
    assert main(["network", "mobilenet_v1", "--summary", "weights"]) == 0
    out = capsys.readouterr().out
    assert "| conv 1x1      |       13 | 3,139,584 |      74.59 | 539,492,352 |    94.86 |" in out
    assert main(["network", "mobilenet_v1", "--summary", "params", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert sum(r["params"] for r in data["summary"]) == data["totals"]["params"]


def test_measure_rejects_zero_threads(capsys):
    assert main(["network", "dcgan_generator", "--measure", "--threads", "0"]) == 2
    assert "field 'threads'" in capsys.readouterr().err


def test_rf_reports_misaligned_branches(tmp_path, capsys):
    path = tmp_path / "mis.json"
    path.write_text(json.dumps({"input": [4, 8, 8], "layers": [
        {"op": "add", "name": "bad", "branches": [
            [{"op": "conv", "out_channels": 4, "kernel": 2, "stride": 2}],
            [{"op": "conv", "out_channels": 4, "kernel": 1, "stride": 2}]]}]}))
    assert main(["rf", str(path)]) == 0
    out = capsys.readouterr().out
    assert "| bad " in out and "| NO " in out
    assert out.rstrip().endswith("MISALIGNED branches: bad")
    assert main(["network", str(path), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["misaligned"] == ["bad"]
