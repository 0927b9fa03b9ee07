"""How this copy of cconv was built, as numpy.show_config reports numpy's build."""

from __future__ import annotations

import sys

from cconv import _pointwise, _runtime, _threads


def build_config() -> dict:
    """Build and runtime facts as a dict (numbers and strings, no formatting)."""
    info = dict(_runtime.build_info())
    info.update(
        # which intrinsics the register-tile engine (1x1 convs, stems, up-convs) runs
        # with: "avx512", "avx2" or None (the GEMM engine takes those layers)
        register_tiles=_pointwise.TILE_ISA,
        default_threads=_threads.get_num_threads(),
        usable_cores=_threads.usable_cores(),
        omp_max_threads=_runtime.omp_max_threads(),
        python=sys.version.split()[0],
    )
    return info


def show_config(file=None) -> None:
    """Print OpenMP on/off, thread counts, compiler, flags and SIMD level."""
    info = build_config()
    out = file or sys.stdout
    width = max(map(len, info))
    print("cconv build configuration", file=out)
    for key, value in info.items():
        print(f"  {key:<{width}} : {value}", file=out)
    if not info["openmp"]:
        print("  WARNING: built without OpenMP: every kernel runs on one thread.", file=out)
