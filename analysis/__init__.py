"""Layer planning for CNNs: shapes, receptive fields, costs, standard vs separable.

Pure Python; only ``--measure`` (:mod:`analysis.measure`) runs the compiled cconv
kernels, importing them lazily. Output sizes come from :mod:`cconv.shapes`, the same
arithmetic the kernels use to allocate their outputs.
"""

from .errors import SpecError
from .network import Analysis, Block, Network, analyse
from .zoo import ZOO, build

__all__ = ["SpecError", "Analysis", "Block", "Network", "analyse", "ZOO", "build"]
