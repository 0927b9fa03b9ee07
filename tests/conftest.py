"""Shared pytest setup: ``tests/`` as a flat directory of helpers, and the right cconv.

The numerical check lives in ``_checks.py``; the naive reference in ``reference.py``;
the case grids in ``cases.py``; the torch spellings in ``torch_equiv.py``.

A source checkout without the compiled extension (e.g. a worktree with only
``cconv/shapes.py``) imports as a *namespace* package when its root is on ``sys.path``
(``python -m pytest`` puts the working directory there), shadowing the installed,
built cconv. Drop such roots from ``sys.path`` so the installed package is found; the
header line reports which cconv the run actually tests.
"""

import importlib
import importlib.util
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def _source_only(entry):
    root = os.path.abspath(entry or os.getcwd())
    pkg = os.path.join(root, "cconv")
    return os.path.isdir(pkg) and not os.path.exists(os.path.join(pkg, "__init__.py"))


if "cconv" not in sys.modules:
    spec = importlib.util.find_spec("cconv")
    if spec is not None and spec.origin in (None, "namespace"):
        sys.path[:] = [e for e in sys.path if not _source_only(e)]
        importlib.invalidate_caches()


def pytest_report_header(config):
    spec = importlib.util.find_spec("cconv")
    where = "not importable" if spec is None else (spec.origin or "namespace package (not built)")
    return f"cconv under test: {where}"
