"""Test helper: an analysis Network rebuilt in torch.nn, to check shapes and parameters
against torch's own arithmetic. Modules are created on the "meta" device, so even
VGG-16 allocates no weights and a forward pass computes shapes only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from analysis.layers import as_pair, resolve_padding
from analysis.network import Block

META = torch.device("meta")


class Padded(nn.Module):
    """F.pad with ((top, bottom), (left, right)) then ``inner``."""

    def __init__(self, pads, inner):
        super().__init__()
        (t, b), (l, r) = pads
        self.pad = (l, r, t, b)
        self.inner = inner

    def forward(self, x):
        return self.inner(F.pad(x, self.pad))


def _conv(layer, c_in, hw, groups, out_channels):
    k = as_pair(layer.kernel, layer.name, "kernel")
    s = as_pair(layer.stride, layer.name, "stride")
    d = as_pair(layer.dilation, layer.name, "dilation")
    if layer.padding == "same" and s == (1, 1):
        return nn.Conv2d(c_in, out_channels, k, s, "same", d, groups, layer.bias, device=META)
    pads = resolve_padding(layer.padding, hw, k, s, d, layer.name)
    conv = nn.Conv2d(c_in, out_channels, k, s, 0, d, groups, layer.bias, device=META)
    return Padded(pads, conv)


def layer_module(layer, in_shape):
    """A torch module computing ``layer`` on a (C, H, W) or (F,) input."""
    op = layer.op
    c = in_shape[0]
    hw = tuple(in_shape[1:])
    if op == "conv":
        return _conv(layer, c, hw, layer.groups, layer.out_channels)
    if op == "pointwise":
        return nn.Conv2d(c, layer.out_channels, 1, layer.stride, 0, bias=layer.bias,
                         device=META)
    if op == "depthwise":
        return _conv(layer, c, hw, c, c * layer.multiplier)
    if op == "separable":
        dw = _conv(layer, c, hw, c, c * layer.multiplier)
        return nn.Sequential(dw, nn.Conv2d(c * layer.multiplier, layer.out_channels, 1,
                                           bias=layer.bias, device=META))
    if op == "conv_transpose":
        p = as_pair(layer.padding, layer.name, "padding")
        return nn.ConvTranspose2d(c, layer.out_channels, layer.kernel, layer.stride, p,
                                  layer.output_padding, layer.groups, layer.bias,
                                  layer.dilation, device=META)
    if op in ("maxpool", "avgpool"):
        k = as_pair(layer.kernel, layer.name, "kernel")
        s = k if layer.stride is None else as_pair(layer.stride, layer.name, "stride")
        if isinstance(layer.padding, str):
            pads = resolve_padding(layer.padding, hw, k, s, (1, 1), layer.name)
            pool = nn.MaxPool2d(k, s, 0, ceil_mode=layer.ceil_mode)
            return Padded(pads, pool)
        if op == "maxpool":
            return nn.MaxPool2d(k, s, layer.padding, layer.dilation, ceil_mode=layer.ceil_mode)
        return nn.AvgPool2d(k, s, layer.padding, ceil_mode=layer.ceil_mode)
    if op == "global_avgpool":
        return nn.AdaptiveAvgPool2d(1)
    if op == "adaptive_avgpool":
        return nn.AdaptiveAvgPool2d(layer.output_size)
    if op == "linear":
        return nn.Sequential(nn.Flatten(), nn.Linear(int(torch.tensor(in_shape).prod()),
                                                     layer.out_features, layer.bias,
                                                     device=META))
    if op == "batchnorm":
        return nn.BatchNorm2d(c, affine=layer.affine, device=META).eval()
    if op in ("act", "dropout"):
        return nn.Identity()
    if op == "flatten":
        return nn.Flatten()
    if op == "upsample":
        if layer.size is not None:
            return nn.Upsample(size=tuple(as_pair(layer.size, "", "size")), mode=layer.mode)
        return nn.Upsample(scale_factor=layer.scale, mode=layer.mode)
    raise NotImplementedError(op)


class Merge(nn.Module):
    def __init__(self, kind, branches, crop):
        super().__init__()
        self.kind, self.crop = kind, crop
        self.branches = nn.ModuleList(branches)

    def forward(self, x):
        outs = [b(x) for b in self.branches]
        if self.kind == "add":
            return sum(outs[1:], outs[0])
        if self.crop:
            th = min(o.shape[2] for o in outs)
            tw = min(o.shape[3] for o in outs)
            outs = [o[:, :, (o.shape[2] - th) // 2:(o.shape[2] - th) // 2 + th,
                      (o.shape[3] - tw) // 2:(o.shape[3] - tw) // 2 + tw] for o in outs]
        return torch.cat(outs, 1)


def build(nodes, in_shape, shapes=None):
    """(module, out_shape) for a node list; ``shapes`` collects each layer's torch shape."""
    modules = []
    shape = tuple(in_shape)
    for node in nodes:
        if isinstance(node, Block):
            branches, outs = [], []
            for branch in node.branches:
                m, o = build(branch, shape, shapes)
                branches.append(m)
                outs.append(o)
            module = nn.Sequential(*branches) if node.kind == "sequential" else \
                Merge(node.kind, branches, node.crop)
        else:
            module = layer_module(node, shape)
        with torch.no_grad():
            shape = tuple(module(torch.empty((1,) + shape, device=META)).shape[1:])
        if shapes is not None and not isinstance(node, Block):
            shapes.append(shape)
        modules.append(module)
    return nn.Sequential(*modules), shape


def param_count(module):
    return sum(p.numel() for p in module.parameters())
