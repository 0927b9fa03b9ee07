"""--plot: PNG charts with matplotlib, a clear one-line error without it."""

import builtins

import pytest

from analysis.cli import main


def _is_png(path):
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_network_plot_writes_a_png(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "net.png"
    assert main(["network", "mobilenet_v1", "--plot", str(out)]) == 0
    assert _is_png(out)


def test_compare_plot_writes_a_png(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "cmp.png"
    assert main(["compare", "vgg16", "--plot", str(out)]) == 0
    assert _is_png(out)


def test_plot_without_matplotlib_is_a_one_line_error(tmp_path, capsys, monkeypatch):
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    assert main(["network", "dcgan_generator", "--plot", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert "field 'plot': --plot needs matplotlib" in err and err.count("\n") == 1
