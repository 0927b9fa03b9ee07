"""Thread-count semantics and the process-wide default."""

import os
import subprocess
import sys

import pytest

import cconv
from cconv import _runtime, _threads


def test_resolve_semantics():
    cores = _threads.usable_cores()
    assert _threads.resolve(3) == 3
    assert _threads.resolve(-1) == cores
    assert _threads.resolve(-cores) == 1
    assert _threads.resolve(None) == cconv.get_num_threads()
    with pytest.raises(ValueError, match="n_threads=0"):
        _threads.resolve(0)
    with pytest.raises(TypeError, match="n_threads must be an int"):
        _threads.resolve(True)


def test_set_and_get_num_threads_and_reset():
    previous = _threads._process_default  # other tests may have set one: restore it
    try:
        cconv.set_num_threads(3)
        assert cconv.get_num_threads() == 3
        cconv.set_num_threads(-1)
        assert cconv.get_num_threads() == _threads.usable_cores()
        cconv.set_num_threads(None)
        # Unset, the default is OpenMP's (OMP_NUM_THREADS, threadpoolctl) capped at the cores.
        openmp_default = (min(_runtime.omp_max_threads(), _threads.usable_cores())
                          if _runtime.openmp_enabled() else 1)
        assert cconv.get_num_threads() == max(1, openmp_default)
    finally:
        _threads._process_default = previous
    with pytest.raises(ValueError):
        cconv.set_num_threads(0)


def test_context_manager_restores_previous_default():
    before = cconv.get_num_threads()
    with cconv.num_threads(1) as n:
        assert n == 1
        assert cconv.get_num_threads() == 1
        with cconv.num_threads(2):
            assert cconv.get_num_threads() == 2
        assert cconv.get_num_threads() == 1
    assert cconv.get_num_threads() == before


def test_default_honours_omp_num_threads():
    code = "import cconv; print(cconv.get_num_threads())"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "1"


def test_default_honours_threadpoolctl(monkeypatch):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    # Other tests may have set a process default; this one is about the unset default.
    monkeypatch.setattr(_threads, "_process_default", None)
    if not cconv.build_config()["openmp"]:
        pytest.skip("built without OpenMP")
    with threadpoolctl.threadpool_limits(limits=1, user_api="openmp"):
        assert cconv.get_num_threads() == 1


def test_show_config_reports_openmp_and_flags(capsys):
    cconv.show_config()
    text = capsys.readouterr().out
    for key in ("openmp", "compiler", "cflags", "simd", "register_tiles", "default_threads"):
        assert key in text
    info = cconv.build_config()
    # the register tiles' intrinsics follow the build's SIMD level
    expected = {"AVX-512F": "avx512", "AVX2+FMA": "avx2"}.get(info["simd"])
    assert info["register_tiles"] == expected, info
    assert isinstance(info["openmp"], bool)
    assert info["default_threads"] >= 1
