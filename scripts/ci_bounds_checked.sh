#!/usr/bin/env bash
# CI, item 2 of the hardening issue: build cconv once more with Cython bounds checking
# (CCONV_DEBUG=1: boundscheck/wraparound/initializedcheck on, -O1 -g, asserts kept) in a
# throw-away copy of the tree, and run the kernel tests against that build, so that an
# out-of-bounds index fails loudly instead of reading garbage.
#
#   scripts/ci_bounds_checked.sh                 # the default kernel-test subset
#   scripts/ci_bounds_checked.sh tests/test_x.py # any pytest arguments instead
#
# PYTHON selects the interpreter (default: python). The source tree is never touched:
# the copy holds the tracked (and untracked, not ignored) files, built in place there.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
py="${PYTHON:-python}"
tmp="$(mktemp -d "${TMPDIR:-/tmp}/cconv-boundscheck.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

cd "$repo"
git ls-files -z --cached --others --exclude-standard |
    while IFS= read -r -d '' f; do
        [ -f "$f" ] && cp --parents -- "$f" "$tmp/"
    done

cd "$tmp"
echo "cconv: bounds-checked build in $tmp" >&2
CCONV_DEBUG=1 "$py" setup.py build_ext --inplace -q >build.log 2>&1 || {
    cat build.log >&2
    echo "cconv: bounds-checked build FAILED" >&2
    exit 1
}

# Make sure the tests import this build and that it really has the checks on.
PYTHONPATH="$tmp" "$py" - <<'PY'
import os, sys, cconv
here = os.path.realpath(os.path.dirname(cconv.__file__))
want = os.path.realpath(os.path.join(os.getcwd(), "cconv"))
assert here == want, f"imported {here}, expected the bounds-checked copy {want}"
flags = cconv.build_config()["cflags"]
assert "-O1" in flags, f"not a debug build: cflags {flags!r}"
print(f"cconv: testing the bounds-checked build ({flags})", file=sys.stderr)
PY

if [ "$#" -gt 0 ]; then
    args=("$@")
else
    # Kernel tests: every test module that runs kernels on many shapes. Modules that
    # do not exist (yet) on this branch are skipped.
    args=()
    for t in tests/test_conv2d.py tests/test_conv_transpose2d.py tests/test_depthwise.py \
             tests/test_pointwise.py tests/test_separable.py tests/test_layouts_and_threads.py \
             tests/test_layers.py tests/test_fuzz.py tests/test_concurrency.py \
             tests/test_params.py tests/test_threads.py tests/test_b_source.py \
             tests/test_weight_packing.py tests/test_winograd.py; do
        [ -f "$t" ] && args+=("$t")
    done
fi
PYTHONPATH="$tmp" "$py" -m pytest "${args[@]}" -q -p no:cacheprovider
