"""The one exception ``analysis`` raises for a bad spec or an impossible layer."""

from __future__ import annotations


class SpecError(ValueError):
    """A layer description that cannot be planned.

    Parameters
    ----------
    layer : str
        Dotted name of the offending layer ("" for the network itself).
    field : str
        The field of that layer that is wrong (e.g. ``"kernel"``, ``"padding"``).
    message : str
        What is wrong and what rule it breaks.

    ``str(err)`` is the single line the CLI prints before exiting with status 2.
    """

    def __init__(self, layer: str, field: str, message: str):
        self.layer = layer
        self.field = field
        self.message = message
        where = f"layer {layer!r}" if layer else "network"
        super().__init__(f"{where}, field {field!r}: {message}")
