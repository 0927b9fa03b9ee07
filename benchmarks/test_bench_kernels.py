"""pytest-benchmark benchmarks, one or more per kernel family, for regression tracking.

Not part of the default test run (the project's pytest ``testpaths`` is ``tests``); see
benchmarks/README.md for saving a baseline and comparing against it. The shapes are
suite cases from scripts/bench_suite.json (small to medium ones, so a full run takes
about a minute), called exactly as scripts/bench.py calls them: cconv's functional API
with a preallocated ``out=``, ``n_threads`` from ``CCONV_BENCH_THREADS`` (default 1).

Before timing, each case's result is checked against the NumPy im2col reference: a
benchmark of a wrong kernel would be meaningless. The whole module skips when cconv
is not importable (not built).
"""

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "scripts"))
import bench  # noqa: E402
import benchcases  # noqa: E402

try:
    import cconv
    if not hasattr(cconv, "conv2d"):
        where = getattr(cconv, "__file__", None) or list(getattr(cconv, "__path__", []))
        raise ImportError(f"cconv found at {where} has no conv2d (not built?)")
except Exception as exc:  # a source tree without its compiled modules raises ImportError or worse
    pytest.skip(f"cconv not importable: {type(exc).__name__}: {exc}", allow_module_level=True)

THREADS = int(os.environ.get("CCONV_BENCH_THREADS", "1"))

# family -> suite cases; at least one per kernel family, plus the fixed-cost case.
FAMILY_CASES = {
    "winograd_3x3": ["r50_l3_3x3", "r50_l1_3x3"],
    # The phase GEMM of a transposed conv: channel tiles in float32 (AVX2 builds run
    # float64 on the register tiles, as below).
    "implicit_gemm": ["dcgan_ct128_64"],
    # AVX2 builds: the stem and U-Net's up-conv on the register tiles over the GEMM's
    # source planes (Algorithm.DIRECT_TILES), 1x1 convs on them directly.
    "register_tiles": ["r50_conv1", "unet_up128_64"],
    "pointwise": ["mbv1_pw_512", "r50_pw_256_64"],
    "depthwise": ["mbv1_dw512_14", "mbv1_dw64_s2", "effb0_dw240_5x5"],
    "fixed_cost": ["tiny_dw16_4"],
    "separable": ["mbv1_sep256_28"],
    "conv_transpose2d": ["dcgan_ct512_256", "fcn8s_up16_s8"],
    "dilated": ["drn_d2_56"],            # Winograd over the dilation's phases
}

_SUITE = {c["name"]: c for c in benchcases.load_suite()}
PARAMS = [pytest.param(family, name, dtype, id=f"{family}-{name}-{dtype}")
          for family, names in FAMILY_CASES.items() for name in names
          for dtype in ("float32", "float64")]


@pytest.mark.parametrize("family, name, dtype", PARAMS)
def test_kernel(benchmark, family, name, dtype):
    case = _SUITE[name]
    arrays = bench.make_arrays(case, dtype)
    calls = bench.make_calls(case, arrays, THREADS, {"cconv": cconv, "numpy": np})
    got = calls["cconv"]()
    got = calls["cconv"].out if got is None else got
    err = bench.relative_error(np.asarray(got), calls["numpy"]())
    assert err <= bench.TOLERANCE[dtype], f"{name} {dtype}: relative error {err:.3g}"

    macs = benchcases.macs(case)
    benchmark.group = f"{family} {dtype}"
    benchmark.extra_info.update(case=name, op=case["op"], dtype=dtype, threads=THREADS,
                                macs=macs, out_preallocated=True)
    benchmark(calls["cconv"])
    stats = getattr(benchmark, "stats", None)
    if stats is not None:                     # None under --benchmark-disable
        best = stats.stats.min
        benchmark.extra_info["gflops_best"] = 2.0 * macs / best / 1e9
        benchmark.extra_info["pct_peak_best"] = (100.0 * benchmark.extra_info["gflops_best"]
                                                 / bench.nominal_peak(dtype, THREADS))
