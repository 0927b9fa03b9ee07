"""Test helper: random layers (with input shapes) that the planner accepts."""

import random

from analysis.errors import SpecError
from analysis.layers import (AvgPool2d, Conv2d, ConvTranspose2d, DepthwiseConv2d, MaxPool2d,
                             PointwiseConv2d, SeparableConv2d)


def _random_layer(rng):
    kind = rng.choice(["conv", "depthwise", "pointwise", "separable", "transposed", "maxpool",
                       "avgpool"])
    c = rng.choice([1, 2, 3, 4, 6, 8])
    h, w = rng.randint(1, 24), rng.randint(1, 24)
    k = (rng.randint(1, 5), rng.randint(1, 5))
    s = (rng.randint(1, 3), rng.randint(1, 3))
    d = (rng.randint(1, 3), rng.randint(1, 3))
    if kind == "conv":
        g = rng.choice([g for g in (1, 2, 3) if c % g == 0])
        padding = rng.choice([rng.randint(0, 3), (rng.randint(0, 2), rng.randint(0, 2)),
                              "valid", "same",
                              ((rng.randint(0, 2), rng.randint(0, 2)),
                               (rng.randint(0, 2), rng.randint(0, 2)))])
        return Conv2d(out_channels=g * rng.randint(1, 3), kernel=k, stride=s, padding=padding,
                      dilation=d, groups=g), (c, h, w)
    if kind == "depthwise":
        return DepthwiseConv2d(kernel=k, stride=s, padding=rng.choice([0, 1, "same"]),
                               dilation=d, multiplier=rng.randint(1, 2)), (c, h, w)
    if kind == "pointwise":
        return PointwiseConv2d(out_channels=rng.randint(1, 5), stride=s), (c, h, w)
    if kind == "separable":
        return SeparableConv2d(out_channels=rng.randint(1, 5), kernel=k, stride=s,
                               padding=rng.choice([0, 1, "same"]), dilation=d), (c, h, w)
    if kind == "transposed":
        g = rng.choice([g for g in (1, 2) if c % g == 0])
        a = (rng.randrange(max(s[0], d[0])), rng.randrange(max(s[1], d[1])))
        return ConvTranspose2d(out_channels=g * rng.randint(1, 3), kernel=k, stride=s,
                               padding=(rng.randint(0, 2), rng.randint(0, 2)),
                               dilation=d, groups=g, output_padding=a), (c, h, w)
    cls = MaxPool2d if kind == "maxpool" else AvgPool2d
    pad = (rng.randint(0, k[0] // 2), rng.randint(0, k[1] // 2))
    return cls(kernel=k, stride=s, padding=pad, ceil_mode=rng.random() < 0.5,
               dilation=d if kind == "maxpool" else 1), (c, h, w)


def random_layers(count, seed=1234):
    """``count`` random (layer, input shape) pairs the planner accepts."""
    rng = random.Random(seed)
    out = []
    while len(out) < count:
        layer, shape = _random_layer(rng)
        try:
            layer.output_shape(shape)
        except SpecError:
            continue
        out.append((layer, shape))
    return out
