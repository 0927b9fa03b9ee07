"""Build script: the Cython extension table and a build_ext that probes for OpenMP.

Environment switches (read once, here):
  CCONV_PORTABLE=1   no -march=native: a binary that runs on any x86-64 of the same ABI.
  CCONV_DEBUG=1      Cython bounds/wraparound checks on, -O1 -g, asserts kept: for CI's
                     bounds-checked run and for hunting out-of-bounds indexing.
  CCONV_NO_OPENMP=1  skip the probe and build serial kernels (to test that fallback).
"""

import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import textwrap

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

PORTABLE = os.environ.get("CCONV_PORTABLE", "") not in ("", "0")
DEBUG = os.environ.get("CCONV_DEBUG", "") not in ("", "0")
NO_OPENMP = os.environ.get("CCONV_NO_OPENMP", "") not in ("", "0")

KERNEL_MODULES = ["_runtime", "_igemm", "_pointwise", "_depthwise", "_separable", "_winograd"]

COMPILER_DIRECTIVES = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": DEBUG,
    "initializedcheck": DEBUG,
    "cdivision": True,
    "nonecheck": False,
    "embedsignature": True,
}

OPENMP_PROBE = textwrap.dedent(
    """
    #include <omp.h>
    #include <stdio.h>
    int main(void) {
        int n = 0;
        #pragma omp parallel reduction(+:n)
        n += 1;
        printf("%d\\n", n > 0 && omp_get_max_threads() > 0);
        return 0;
    }
    """
)


def _optimisation_flags():
    if DEBUG:
        return ["-O1", "-g", "-UNDEBUG"]
    flags = ["-O3"]
    if not PORTABLE:
        # Zen 4 runs 512-bit ops as two halves at the same peak, but gcc 12 tunes this
        # CPU as znver3 and keeps 256-bit vectors unless asked; 512-bit halves the
        # instruction count of the micro-kernels.
        flags += ["-march=native", "-mprefer-vector-width=512"]
    # Keep short copy loops inline (vectorised, masked tails) instead of turning each
    # into a memcpy/memmove call: copies here are 7 to 200 values, where the call costs
    # more than the copy (memmove was 9% of a 3x3 conv's profile).
    flags += ["-fno-tree-loop-distribute-patterns"]
    return flags


class BuildExtWithOpenMP(build_ext):
    """Adds OpenMP compile/link flags only after a real program built and ran with them."""

    def _probe_openmp(self):
        if NO_OPENMP:
            return None
        cc = self.compiler.compiler_so[0] if hasattr(self.compiler, "compiler_so") else "cc"
        for flag in ("-fopenmp", "-Xpreprocessor -fopenmp"):
            tmp = tempfile.mkdtemp(prefix="cconv-omp-")
            try:
                src = os.path.join(tmp, "probe.c")
                exe = os.path.join(tmp, "probe")
                with open(src, "w") as f:
                    f.write(OPENMP_PROBE)
                cmd = [cc, *flag.split(), src, "-o", exe, *flag.split()]
                if subprocess.run(cmd, capture_output=True).returncode != 0:
                    continue
                run = subprocess.run([exe], capture_output=True, text=True)
                if run.returncode == 0 and run.stdout.strip() == "1":
                    return flag.split()
            except OSError:
                continue
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        return None

    def build_extensions(self):
        omp_flags = self._probe_openmp()
        if omp_flags is None:
            bar = "!" * 72
            sys.stderr.write(
                f"\n{bar}\ncconv: WARNING: the C compiler could not build an OpenMP program.\n"
                "cconv will be built WITHOUT OpenMP: every kernel runs on one thread.\n"
                "cconv.show_config() reports this at run time.\n"
                f"{bar}\n\n"
            )
        opt = _optimisation_flags()
        cflags = " ".join(opt + (omp_flags or []))
        for ext in self.extensions:
            ext.extra_compile_args = opt + (omp_flags or []) + ["-Wno-unused-function"]
            ext.extra_link_args = list(omp_flags or [])
            ext.define_macros = [
                ("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION"),
                ("CCONV_BUILD_CFLAGS", '"%s"' % cflags),
                ("CCONV_BUILD_COMPILER", '"%s"' % os.path.basename(self.compiler.compiler_so[0])),
            ]
        super().build_extensions()


extensions = [
    Extension(f"cconv.{name}", [f"cconv/{name}.pyx"], include_dirs=[numpy.get_include()])
    for name in KERNEL_MODULES
]

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives=COMPILER_DIRECTIVES,
        # A debug build must not reuse C files generated without the checks.
        force=DEBUG,
    ),
    cmdclass={"build_ext": BuildExtWithOpenMP},
)
