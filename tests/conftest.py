"""Shared pytest setup: make ``tests/`` importable as a flat directory of helpers.

The numerical check lives in ``_checks.py``; the naive reference in ``reference.py``;
the case grids in ``cases.py``; the torch spellings in ``torch_equiv.py``.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
