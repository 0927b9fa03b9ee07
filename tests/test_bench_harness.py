"""Tests of the benchmark harness (scripts/benchcases.py, numpy_ref.py, bench.py).

Fast and deterministic: tiny shapes, one round, no assertion on any timing. Parts that
need PyTorch or a built cconv skip when those are not importable.
"""

import json
import math
import os
import subprocess
import sys
import types

import numpy as np
import pytest

SCRIPTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts")
sys.path.insert(0, SCRIPTS)

import bench  # noqa: E402
import benchcases  # noqa: E402
import numpy_ref  # noqa: E402

SHARED_SUITE = os.path.join(os.path.dirname(os.path.dirname(SCRIPTS)), "shared", "bench",
                            "suite.json")

try:
    import torch
    import torch.nn.functional as F
except ImportError:
    torch = None
needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch not installed")


def _cconv_or_none():
    module, _ = bench.import_optional("cconv")
    return module if module is not None and hasattr(module, "conv2d") else None


def tiny_case(op, **over):
    """A small, valid case of family ``op`` (3x3 unless pointwise)."""
    case = {"name": f"tiny_{op}", "op": op, "N": 2, "C_in": 4, "H": 7, "W": 6, "C_out": 6,
            "kernel": [3, 3], "stride": [1, 1], "padding": [1, 1], "dilation": [1, 1],
            "groups": 1, "source": "test"}
    if op == "pointwise":
        case.update(kernel=[1, 1], padding=[0, 0])
    elif op == "depthwise":
        case.update(C_out=4, groups=4, stride=[2, 2])
    elif op == "separable":
        case.update(groups=4, dilation=[2, 2], padding=[2, 2])
    elif op == "dilated":
        case.update(dilation=[2, 2], padding=[2, 2], groups=2)
    elif op == "conv_transpose2d":
        case.update(kernel=[4, 4], stride=[2, 2], output_padding=[1, 0], groups=2)
    case.update(over)
    return case


def args_for(*extra):
    return bench.parse_args(["--rounds", "1", "--min-time", "0", "--quiet", *extra])


# --------------------------------------------------------------------------- the suite file

def test_suite_loads_with_all_shared_cases_and_the_added_ones():
    cases = benchcases.load_suite()
    names = [c["name"] for c in cases]
    assert len(cases) >= 25
    assert len(set(names)) == len(names)
    for added in ("fcn32s_up64_s32", "fcn8s_up16_s8", "tiny_dw16_4"):
        assert added in names


@pytest.mark.skipif(not os.path.exists(SHARED_SUITE), reason="../shared/bench/suite.json absent")
def test_first_cases_are_the_shared_suite_unchanged():
    with open(SHARED_SUITE) as f:
        shared = json.load(f)["cases"]
    assert benchcases.load_suite()[:len(shared)] == shared


def test_every_case_has_the_required_fields():
    for case in benchcases.load_suite():
        for field in benchcases.REQUIRED_FIELDS:
            assert field in case, (case["name"], field)
        assert case["op"] in benchcases.OPS
        assert case["source"], case["name"]
        if case["op"] == "conv_transpose2d":
            assert len(case["output_padding"]) == 2


def test_every_added_case_says_why():
    cases = benchcases.load_suite()
    for case in cases[25:]:
        assert case["source"].startswith("Added"), case["name"]


def test_every_family_is_in_the_suite():
    assert {c["op"] for c in benchcases.load_suite()} == set(benchcases.OPS)


@pytest.mark.parametrize("field, value, match", [
    ("op", "conv3d", "op 'conv3d' is not one of"),
    ("kernel", [3], "kernel must be a pair"),
    ("groups", 3, "groups=3 must divide C_in=4"),
])
def test_validate_case_names_the_bad_field(field, value, match):
    case = tiny_case("conv2d")
    case[field] = value
    with pytest.raises(ValueError, match=match):
        benchcases.validate_case(case)


def test_validate_case_reports_missing_fields():
    case = tiny_case("conv_transpose2d")
    del case["source"], case["output_padding"]
    with pytest.raises(ValueError, match="lacks field.*source, output_padding"):
        benchcases.validate_case(case)


def test_validate_case_rejects_a_depthwise_case_with_the_wrong_groups():
    with pytest.raises(ValueError, match="depthwise case needs groups == C_in"):
        benchcases.validate_case(tiny_case("depthwise", groups=2))


# --------------------------------------------------------------------------- MAC arithmetic

def _case(name):
    return next(c for c in benchcases.load_suite() if c["name"] == name)


def test_macs_of_a_plain_conv_hand_computed():
    # 64 out x 64 in x 3x3 taps x 56x56 outputs
    assert benchcases.macs(_case("r50_l1_3x3")) == 64 * 64 * 9 * 56 * 56 == 115_605_504


def test_macs_of_a_strided_conv_use_the_output_size():
    # 7x7/2 p3 on 224: 112x112 outputs, 64 x 3 x 49 each
    assert benchcases.macs(_case("r50_conv1")) == 64 * 112 * 112 * 3 * 49 == 118_013_952


def test_macs_of_a_transposed_conv_count_from_the_input_size():
    # 512 in x 4x4 input pixels x 256 out x 4x4 taps (the 8x8 output plays no part)
    assert benchcases.macs(_case("dcgan_ct512_256")) == 512 * 16 * 256 * 16 == 33_554_432
    # FCN-32s: 21 x 7x7 x 21 x 64x64
    assert benchcases.macs(_case("fcn32s_up64_s32")) == 21 * 49 * 21 * 4096 == 88_510_464


def test_macs_of_a_separable_conv_add_both_stages():
    dw = 256 * 28 * 28 * 9
    pw = 256 * 256 * 28 * 28
    assert benchcases.macs(_case("mbv1_sep256_28")) == dw + pw == 53_186_560


def test_macs_of_depthwise_and_batch():
    assert benchcases.macs(_case("mbv1_dw512_14")) == 512 * 14 * 14 * 9
    assert benchcases.macs(_case("r50_l1_3x3_n8")) == 8 * benchcases.macs(_case("r50_l1_3x3"))
    assert benchcases.flops(_case("mbv1_dw512_14")) == 2 * 903_168


def test_output_shapes_of_added_transposed_cases():
    assert benchcases.output_shape(_case("fcn32s_up64_s32")) == (1, 21, 224, 224)
    assert benchcases.output_shape(_case("fcn32s_up64_s32_16")) == (1, 21, 512, 512)
    assert benchcases.output_shape(_case("fcn8s_up16_s8")) == (1, 21, 224, 224)


@needs_torch
def test_output_and_weight_shapes_agree_with_torch_for_every_case():
    for case in benchcases.load_suite():
        x = torch.empty(benchcases.input_shape(case), device="meta")
        ws = [torch.empty(s, device="meta") for s in benchcases.weight_shapes(case)]
        s, p, d = (tuple(case[f]) for f in ("stride", "padding", "dilation"))
        if case["op"] == "conv_transpose2d":
            y = F.conv_transpose2d(x, ws[0], None, s, p, tuple(case["output_padding"]),
                                   case["groups"], d)
        elif case["op"] == "separable":
            y = F.conv2d(F.conv2d(x, ws[0], None, s, p, d, case["C_in"]), ws[1])
        else:
            y = F.conv2d(x, ws[0], None, s, p, d, case["groups"])
        assert tuple(y.shape) == benchcases.output_shape(case), case["name"]


def test_output_sizes_agree_with_cconv_shapes():
    shapes = pytest.importorskip("cconv.shapes")
    for case in benchcases.load_suite():
        k, s, p, d = (tuple(case[f]) for f in benchcases.PAIR_FIELDS)
        pad = ((p[0], p[0]), (p[1], p[1]))
        if case["op"] == "conv_transpose2d":
            hw = shapes.conv_transpose2d_output_hw((case["H"], case["W"]), k, s, pad, d,
                                                   tuple(case["output_padding"]))
        else:
            hw = shapes.conv2d_output_hw((case["H"], case["W"]), k, s, pad, d)
        assert tuple(hw) == benchcases.output_hw(case), case["name"]


# --------------------------------------------------------------------------- filtering

def test_select_cases_by_substring_glob_and_op():
    cases = benchcases.load_suite()
    names = lambda sel: [c["name"] for c in sel]  # noqa: E731
    assert names(benchcases.select_cases(cases, ["dw512"])) == ["mbv1_dw512_14"]
    assert names(benchcases.select_cases(cases, ["aspp_d1*"])) == ["aspp_d12", "aspp_d18"]
    assert names(benchcases.select_cases(cases, ["*_n8"], ["pointwise"])) == ["r50_pw_256_64_n8"]
    assert names(benchcases.select_cases(cases, ["dw512", "unet"])) == ["mbv1_dw512_14",
                                                                       "unet_up128_64"]
    assert benchcases.select_cases(cases, None, None) == cases
    assert benchcases.select_cases(cases, ["no_such_case"]) == []
    # a glob matches the whole name, a substring anywhere
    assert benchcases.select_cases(cases, ["dw512*"]) == []


def test_select_cases_rejects_an_unknown_op():
    with pytest.raises(ValueError, match="unknown op.*conv3d"):
        benchcases.select_cases(benchcases.load_suite(), None, ["conv3d"])


# --------------------------------------------------------------------------- helpers

def test_geomean():
    assert benchcases.geomean([1.0, 4.0]) == pytest.approx(2.0)
    assert benchcases.geomean([2, 8, 4]) == pytest.approx(4.0)
    assert benchcases.geomean([3.0]) == pytest.approx(3.0)
    assert benchcases.geomean(iter([0.5, 2.0])) == pytest.approx(1.0)
    assert math.isnan(benchcases.geomean([]))
    with pytest.raises(ValueError):
        benchcases.geomean([1.0, 0.0])


def test_reexec_env_sets_only_what_is_missing():
    env = bench.reexec_env({"PATH": "/bin", "MALLOC_TRIM_THRESHOLD_": "5"})
    assert env["MALLOC_MMAP_THRESHOLD_"] == "33554432"
    assert env["MALLOC_TRIM_THRESHOLD_"] == "5"
    assert env["PATH"] == "/bin" and env[bench.REEXEC_GUARD] == "1"
    assert bench.reexec_env(dict(bench.MALLOC_ENV)) is None
    assert bench.reexec_env({bench.REEXEC_GUARD: "1"}) is None


def test_nominal_peak():
    assert bench.nominal_peak("float32", 1) == 108
    assert bench.nominal_peak("float32", 2) == 210
    assert bench.nominal_peak("float64", 1) == 55
    assert bench.nominal_peak("float32", 4) == 4 * 108


def test_relative_error():
    ref = np.array([1.0, -4.0])
    assert bench.relative_error(np.array([1.0, -3.0]), ref) == pytest.approx(0.25)
    assert bench.relative_error(np.zeros(3), ref[:1]) == math.inf
    assert bench.relative_error(np.array([np.nan, -4.0]), ref) == math.inf


def test_time_interleaved_interleaves_and_rotates():
    log = []
    calls = {"a": lambda: log.append("a"), "b": lambda: log.append("b")}
    samples = bench.time_interleaved(calls, rounds=3, min_time=0)
    assert {k: len(v) for k, v in samples.items()} == {"a": 3, "b": 3}
    assert all(t >= 0 for v in samples.values() for t in v)
    # two calibration calls each, then one call per contender per round, order rotating
    assert log == ["a", "a", "b", "b", "a", "b", "b", "a", "a", "b"]


def _row(case, op, threads, torch_ms, cconv_ms, status="ok"):
    t = {"torch": {"best": torch_ms, "median": torch_ms * 1.1, "samples": [torch_ms]},
         "cconv": {"best": cconv_ms, "median": cconv_ms * 1.1, "samples": [cconv_ms]}}
    return {"case": case, "op": op, "threads": threads, "macs": 1_000_000, "status": status,
            "messages": [] if status == "ok" else ["cconv differs"], "rel_err": {},
            "timings_ms": t, "gflops": {"cconv": 2.0 / cconv_ms, "torch": 2.0 / torch_ms},
            "pct_peak": {"cconv": 1.0, "torch": 0.5},
            "ratio_best": torch_ms / cconv_ms, "ratio_median": torch_ms / cconv_ms}


def test_passes_pool_their_samples_and_keep_failures():
    def row(cconv_ms, torch_ms, status="ok", messages=()):
        return bench.with_statistics({
            "case": "c", "op": "conv2d", "threads": 1, "macs": 10**6, "status": status,
            "messages": list(messages), "rel_err": {}, "peak_gflops": 100.0,
            "timings_ms": {"cconv": {"samples": list(cconv_ms)},
                           "torch": {"samples": list(torch_ms)}}})
    first = row([4.0, 3.0, 5.0], [6.0, 6.0, 9.0])
    assert first["ratio_best"] == 2.0
    merged = bench.merge_passes(first, row([1.0, 2.0, 8.0], [3.0, 7.0, 7.0], "FAILED", ["x"]))
    t = merged["timings_ms"]
    assert t["cconv"]["samples"] == [4.0, 3.0, 5.0, 1.0, 2.0, 8.0]
    assert (t["cconv"]["best"], t["cconv"]["median"]) == (1.0, 3.5)
    assert (t["torch"]["best"], t["torch"]["median"]) == (3.0, 6.5)
    assert merged["ratio_best"] == 3.0 and merged["ratio_median"] == 6.5 / 3.5
    assert merged["gflops"]["cconv"] == 2.0 and merged["pct_peak"]["cconv"] == 2.0
    assert merged["status"] == "FAILED" and merged["messages"] == ["x"]
    assert first["timings_ms"]["cconv"]["best"] == 3.0   # the inputs are left alone


def test_passes_option_is_checked():
    with pytest.raises(SystemExit):
        bench.parse_args(["--passes", "0"])
    assert bench.parse_args(["--passes", "3"]).passes == 3


def test_summarize_takes_geomeans_per_family_and_overall():
    rows = [_row("a", "conv2d", 1, 2.0, 1.0), _row("b", "conv2d", 1, 8.0, 1.0),
            _row("c", "depthwise", 1, 1.0, 1.0), _row("a", "conv2d", 2, 1.0, 1.0)]
    got = {(s["threads"], s["op"]): s for s in bench.summarize(rows)}
    assert set(got) == {(1, "conv2d"), (1, "depthwise"), (1, "overall"), (2, "conv2d"),
                        (2, "overall")}
    assert got[1, "conv2d"]["geomean_ratio_best"] == pytest.approx(4.0)
    assert got[1, "overall"]["geomean_ratio_best"] == pytest.approx(16 ** (1 / 3))
    assert got[1, "overall"]["cases"] == 3


def test_render_table_has_every_column_and_row():
    rows = [_row("r50_l1_3x3", "conv2d", 1, 2.0, 1.0),
            _row("mbv1_dw512_14", "depthwise", 2, 0.3, 0.1, status="FAILED")]
    peaks = [{"threads": 1, "nominal_gflops": 108.0, "fma_gflops": 247.0,
              "measured_gflops": 80.0, "measured_with": "torch.mm"}]
    text = bench.render_table(rows, bench.summarize(rows), ["cconv", "torch"], peaks, "float32")
    header = text.splitlines()[0]
    for col in ("case", "op", "thr", "MACs", "cconv ms best / med", "torch ms best / med",
                "GFLOP/s (cconv)", "% peak", "torch/cconv", "status"):
        assert col in header
    assert "r50_l1_3x3" in text and "2.00x" in text and "1.0M" in text
    assert "FAILED: cconv differs" in text
    assert "geomean torch/cconv" in text and "overall" in text
    assert "FMA peak" in text and "247.0" in text
    assert "nominal" in text and "80.0" in text


def test_fma_peak_probe_measures_a_plausible_rate():
    # At least 1 GFLOP/s on any machine that runs the suite; the probe's loop has no
    # loads, so a broken (optimised-away or scalarised) probe shows as absurd numbers.
    pytest.importorskip("cconv._runtime")
    for dtype in ("float32", "float64"):
        gflops = bench.measure_fma_peak(dtype, 1)
        assert 1.0 < gflops < 10_000.0


def test_write_plot_writes_a_png_or_explains(tmp_path):
    path = tmp_path / "ratios.png"
    msg = bench.write_plot(str(path), [_row("a", "conv2d", 1, 2.0, 1.0)], "float32")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert "needs matplotlib" in msg and not path.exists()
    else:
        assert msg is None and path.read_bytes()[:4] == b"\x89PNG"


# --------------------------------------------------------------------------- numpy reference

@needs_torch
@pytest.mark.parametrize("op", benchcases.OPS)
def test_numpy_reference_matches_torch(op):
    case = tiny_case(op)
    arrays = bench.make_arrays(case, "float64")
    calls = bench.make_calls(case, arrays, 1, {"torch": torch, "numpy": np})
    want = bench.as_numpy(calls["torch"]())
    got = calls["numpy"]()
    assert got.shape == benchcases.output_shape(case)
    assert bench.relative_error(got, want) < 1e-12


# --------------------------------------------------------------------------- checks and rows

class _FakeCconv:
    """Stands in for cconv: right shapes, and a result that is wrong or raises."""

    def __init__(self, mode):
        self.mode = mode

    def depthwise_conv2d(self, x, w, bias=None, stride=1, padding=0, dilation=1, *, out=None,
                         n_threads=None):
        if self.mode == "raise":
            raise NotImplementedError("no depthwise kernel yet")
        out[...] = 1.0
        return out


@needs_torch
@pytest.mark.parametrize("mode, status, message", [
    ("wrong", "FAILED", "cconv differs from the reference"),
    ("raise", "ERROR", "cconv raised NotImplementedError: no depthwise kernel yet"),
])
def test_a_bad_cconv_result_marks_the_row_and_is_not_timed(mode, status, message):
    case = tiny_case("depthwise")
    contenders = {"cconv": _FakeCconv(mode), "torch": torch, "numpy": np}
    row = bench.run_case(case, bench.make_arrays(case, "float32"), 1, contenders,
                         args_for(), bench.Progress(enabled=False), "[1/1]")
    assert row["status"] == status
    assert any(message in m for m in row["messages"])
    assert "cconv" not in row["timings_ms"] and "torch" in row["timings_ms"]
    assert "ratio_best" not in row


def test_numpy_is_skipped_over_the_mac_cap():
    case = tiny_case("conv2d")
    row = bench.run_case(case, bench.make_arrays(case, "float32"), 1,
                         {"cconv": None, "torch": None, "numpy": np},
                         args_for("--numpy-max-macs", "10"), bench.Progress(enabled=False), "")
    assert "numpy" not in row["timings_ms"]
    assert any("numpy skipped" in m for m in row["messages"])


def test_without_torch_numpy_checks_cconv_even_over_the_cap():
    case = tiny_case("depthwise")
    row = bench.run_case(case, bench.make_arrays(case, "float32"), 1,
                         {"cconv": _FakeCconv("wrong"), "torch": None, "numpy": np},
                         args_for("--numpy-max-macs", "10"), bench.Progress(enabled=False), "")
    assert row["status"] == "FAILED"
    assert "numpy" not in row["timings_ms"]


def test_a_cconv_result_without_any_reference_is_flagged():
    case = tiny_case("depthwise")
    row = bench.run_case(case, bench.make_arrays(case, "float32"), 1,
                         {"cconv": _FakeCconv("wrong"), "torch": None, "numpy": None},
                         args_for(), bench.Progress(enabled=False), "")
    assert any(m.startswith("cconv unchecked") for m in row["messages"])
    text = bench.render_table([row], [], ["cconv"], [], "float32")
    assert "NOT checked" in text and "tiny_depthwise" in text


# --------------------------------------------------------------------------- the CLI

def test_main_runs_the_tiny_case_and_writes_json(tmp_path, capsys):
    out = tmp_path / "r.json"
    rc = bench.main(["--cases", "tiny_dw16_4", "--rounds", "1", "--min-time", "0",
                     "--threads", "1", "--no-peak", "--quiet", "--json", str(out)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "tiny_dw16_4" in printed
    doc = json.loads(out.read_text())
    assert doc["meta"]["dtype"] == "float32" and doc["meta"]["threads"] == [1]
    (row,) = doc["results"]
    assert row["case"] == "tiny_dw16_4" and row["macs"] == 2304 and row["status"] == "ok"
    assert "numpy" in row["timings_ms"]


def test_main_float64_and_ops_filter(tmp_path):
    rc = bench.main(["--cases", "tiny", "--ops", "depthwise", "--dtype", "float64",
                     "--rounds", "1", "--min-time", "0", "--threads", "1", "--no-peak",
                     "--quiet", "--json", ""])
    assert rc == 0


def test_main_reports_no_matching_case(capsys):
    assert bench.main(["--cases", "no_such_case", "--json", "", "--quiet"]) == 2
    assert "no case matches" in capsys.readouterr().err


@pytest.mark.parametrize("bad", [["--threads", "0"], ["--threads", "a"], ["--rounds", "0"],
                                 ["--dtype", "float16"]])
def test_bad_options_exit_with_usage_error(bad):
    with pytest.raises(SystemExit) as exc:
        bench.parse_args(bad)
    assert exc.value.code == 2


def test_cli_help_as_a_process():
    proc = subprocess.run([sys.executable, os.path.join(SCRIPTS, "bench.py"), "--help"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0
    for opt in ("--cases", "--ops", "--dtype", "--threads", "--rounds", "--min-time",
                "--no-numpy", "--json", "--plot"):
        assert opt in proc.stdout


def test_script_reexecs_itself_with_the_malloc_settings(tmp_path):
    out = tmp_path / "r.json"
    env = {k: v for k, v in os.environ.items()
           if k not in bench.MALLOC_ENV and k != bench.REEXEC_GUARD}
    proc = subprocess.run([sys.executable, os.path.join(SCRIPTS, "bench.py"), "--cases",
                           "tiny_dw16_4", "--rounds", "1", "--min-time", "0", "--threads", "1",
                           "--no-peak", "--quiet", "--json", str(out)],
                          capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(out.read_text())["meta"]["malloc_env"] == bench.MALLOC_ENV


# --------------------------------------------------------------------------- with cconv built

@pytest.mark.skipif(_cconv_or_none() is None, reason="cconv not importable (not built)")
@needs_torch
@pytest.mark.parametrize("op", benchcases.OPS)
def test_cconv_passes_the_harness_check_on_tiny_cases(op):
    cconv = _cconv_or_none()
    case = tiny_case(op)
    row = bench.run_case(case, bench.make_arrays(case, "float32"), 1,
                         {"cconv": cconv, "torch": torch, "numpy": None}, args_for(),
                         bench.Progress(enabled=False), "")
    assert row["status"] == "ok", row["messages"]
    assert "ratio_best" in row


def test_thread_control_leaves_torch_at_the_requested_count():
    """torch must really run n threads in the n-thread rows. Restoring threadpoolctl's
    earlier limit after torch.set_num_threads reset torch to one thread: every 2-thread
    torch row ran single-threaded until this was caught (stop 9)."""
    if torch is None:
        pytest.skip("torch not installed")
    control = bench.ThreadControl(torch)
    try:
        for n in (1, 2, 1, 2, 3):
            control.set(n)
            assert torch.get_num_threads() == n
    finally:
        control.restore()


def test_thread_control_refuses_a_thread_count_torch_did_not_take():
    stuck = types.SimpleNamespace(set_num_threads=lambda n: None, get_num_threads=lambda: 1)
    control = bench.ThreadControl(stuck)
    try:
        control.set(1)
        with pytest.raises(RuntimeError, match="torch runs 1 threads"):
            control.set(2)
    finally:
        control.restore()
