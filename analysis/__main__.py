"""``python -m analysis``: the ``cconv-plan`` command line."""

import sys

from .cli import main

sys.exit(main())
