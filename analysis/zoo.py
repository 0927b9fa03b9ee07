"""Built-in networks, layer for layer as their reference implementations define them.

Each builder takes keyword parameters and returns a :class:`analysis.network.Network`.

* ``alexnet``, ``vgg16``, ``resnet50``, ``mobilenet_v2``: as torchvision defines them
  (``torchvision/models/*.py``), so their parameter counts and MACs are torchvision's.
* ``mobilenet_v1``: Howard et al. 2017, Table 1, with TensorFlow's ``"same"`` padding
  (the paper's implementation), width multiplier ``width`` and input ``resolution``;
  ``separable=False`` gives the paper's "Conv MobileNet" of Table 4.
* ``dcgan_generator``: Radford et al. 2016 as in the PyTorch DCGAN example.
* ``unet``: Ronneberger et al. 2015 (valid convolutions, crop-and-concat skips).
* ``deeplabv3_aspp``: the DeepLabv3 head (Chen et al. 2017) as torchvision's
  ``DeepLabHead``: ASPP with dilated 3x3 branches and an image-pooling branch.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Sequence, Tuple

from .errors import SpecError
from .layers import (Activation, AdaptiveAvgPool2d, BatchNorm2d, Conv2d, ConvTranspose2d,
                     DepthwiseConv2d, Dropout, Flatten, GlobalAvgPool2d, Linear, MaxPool2d,
                     Upsample)
from .network import Block, Network


def _conv_bn_act(name, out, kernel, stride=1, padding=0, dilation=1, groups=1,
                 act="relu", depthwise=False) -> List:
    if depthwise:
        conv = DepthwiseConv2d(name, kernel=kernel, stride=stride, padding=padding,
                               dilation=dilation, bias=False)
    else:
        conv = Conv2d(name, out, kernel, stride, padding, dilation, groups, bias=False)
    layers = [conv, BatchNorm2d(name + "_bn")]
    if act:
        layers.append(Activation(name + "_" + act, act))
    return layers


# ---------------------------------------------------------------------------- torchvision
def alexnet(num_classes: int = 1000, resolution: int = 224, conv1_padding: int = 2) -> Network:
    """torchvision's AlexNet (``conv1_padding=0`` gives TF-slim's alexnet_v2 geometry)."""
    features = [
        Conv2d("conv1", 64, 11, 4, conv1_padding), Activation("relu1"), MaxPool2d("pool1", 3, 2),
        Conv2d("conv2", 192, 5, 1, 2), Activation("relu2"), MaxPool2d("pool2", 3, 2),
        Conv2d("conv3", 384, 3, 1, 1), Activation("relu3"),
        Conv2d("conv4", 256, 3, 1, 1), Activation("relu4"),
        Conv2d("conv5", 256, 3, 1, 1), Activation("relu5"), MaxPool2d("pool5", 3, 2),
    ]
    classifier = [
        AdaptiveAvgPool2d("avgpool", (6, 6)), Flatten("flatten"),
        Dropout("drop6"), Linear("fc6", 4096), Activation("relu6"),
        Dropout("drop7"), Linear("fc7", 4096), Activation("relu7"),
        Linear("fc8", num_classes),
    ]
    return Network("alexnet", (3, resolution, resolution), tuple(features + classifier),
                   "AlexNet (torchvision)")


def vgg16(num_classes: int = 1000, resolution: int = 224) -> Network:
    """torchvision's VGG-16 (configuration "D", no batch norm)."""
    cfg = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
           512, 512, 512, "M"]
    layers: List = []
    stage, index = 1, 1
    for v in cfg:
        if v == "M":
            layers.append(MaxPool2d(f"pool{stage}", 2, 2))
            stage, index = stage + 1, 1
        else:
            layers += [Conv2d(f"conv{stage}_{index}", v, 3, 1, 1),
                       Activation(f"relu{stage}_{index}")]
            index += 1
    layers += [AdaptiveAvgPool2d("avgpool", (7, 7)), Flatten("flatten"),
               Linear("fc6", 4096), Activation("relu6"), Dropout("drop6"),
               Linear("fc7", 4096), Activation("relu7"), Dropout("drop7"),
               Linear("fc8", num_classes)]
    return Network("vgg16", (3, resolution, resolution), tuple(layers), "VGG-16 (torchvision)")


def resnet50(num_classes: int = 1000, resolution: int = 224, stride_at: str = "first",
             maxpool_padding: Any = 1) -> Network:
    """torchvision's ResNet-50 (v1.5: stride on the 3x3 conv of a stage's first block).

    ``stride_at="last"`` with ``maxpool_padding="same"`` gives TF-slim's resnet_v1_50
    geometry (stride on the last block of stages 1-3), which Araujo et al. tabulate.
    """
    if stride_at not in ("first", "last"):
        raise SpecError("", "stride_at", f"expected 'first' or 'last', got {stride_at!r}")
    layers: List = _conv_bn_act("conv1", 64, 7, 2, 3) + [
        MaxPool2d("maxpool", 3, 2, maxpool_padding)]
    c_in = 64
    for stage, (width, blocks, stride) in enumerate(
            [(64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)], start=1):
        if stride_at == "last":
            stride = 1 if stage == 4 else 2
        for b in range(blocks):
            at = 0 if stride_at == "first" else blocks - 1
            s = stride if b == at else 1
            name = f"layer{stage}.{b}"
            main = (_conv_bn_act("conv1", width, 1) + _conv_bn_act("conv2", width, 3, s, 1)
                    + _conv_bn_act("conv3", width * 4, 1, act=None))
            shortcut: List = []
            if s != 1 or c_in != width * 4:
                shortcut = [Conv2d("downsample", width * 4, 1, s, 0, bias=False),
                            BatchNorm2d("downsample_bn")]
            layers += [Block(name, "add", (tuple(main), tuple(shortcut))),
                       Activation(name + ".relu")]
            c_in = width * 4
    layers += [GlobalAvgPool2d("avgpool"), Flatten("flatten"), Linear("fc", num_classes)]
    return Network("resnet50", (3, resolution, resolution), tuple(layers),
                   "ResNet-50 (torchvision v1.5)")


def make_divisible(value: float, divisor: int = 8) -> int:
    """torchvision's ``_make_divisible``: nearest multiple of ``divisor``, at most 10% down."""
    new = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if new < 0.9 * value:
        new += divisor
    return new


def mobilenet_v2(num_classes: int = 1000, resolution: int = 224, width: float = 1.0) -> Network:
    """torchvision's MobileNetV2 (inverted residuals, ReLU6, linear bottlenecks)."""
    settings = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                (6, 160, 3, 2), (6, 320, 1, 1)]
    c_in = make_divisible(32 * width)
    last = make_divisible(1280 * max(1.0, width))
    layers: List = _conv_bn_act("features.0", c_in, 3, 2, 1, act="relu6")
    index = 1
    for t, c, n, s in settings:
        c_out = make_divisible(c * width)
        for i in range(n):
            stride = s if i == 0 else 1
            hidden = int(round(c_in * t))
            body: List = []
            if t != 1:
                body += _conv_bn_act("expand", hidden, 1, act="relu6")
            body += _conv_bn_act("dw", hidden, 3, stride, 1, act="relu6", depthwise=True)
            body += _conv_bn_act("project", c_out, 1, act=None)
            name = f"features.{index}"
            if stride == 1 and c_in == c_out:
                layers.append(Block(name, "add", (tuple(body), ())))
            else:
                layers.append(Block(name, "sequential", (tuple(body),)))
            c_in, index = c_out, index + 1
    layers += _conv_bn_act(f"features.{index}", last, 1, act="relu6")
    layers += [GlobalAvgPool2d("avgpool"), Flatten("flatten"), Dropout("dropout", 0.2),
               Linear("classifier", num_classes)]
    return Network("mobilenet_v2", (3, resolution, resolution), tuple(layers),
                   "MobileNetV2 (torchvision)")


# ---------------------------------------------------------------------------- papers
#: Howard et al. 2017, Table 1: (output channels, stride) of the 13 separable layers.
MOBILENET_V1_BODY: Tuple[Tuple[int, int], ...] = (
    (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
    (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1))


def mobilenet_v1(num_classes: int = 1000, resolution: int = 224, width: float = 1.0,
                 separable: bool = True) -> Network:
    """MobileNet v1 (Howard et al. 2017, Table 1) with width multiplier and resolution.

    Channels are ``max(int(c * width), 8)`` as in the reference TF-slim code; padding is
    TensorFlow's ``"same"``. ``separable=False`` replaces each depthwise + pointwise pair
    by a full 3x3 convolution (Table 4's "Conv MobileNet").
    """
    if not 0 < width <= 4:
        raise SpecError("", "width", f"expected 0 < width <= 4, got {width}")
    depth = lambda c: max(int(c * width), 8)  # noqa: E731
    layers: List = _conv_bn_act("conv1", depth(32), 3, 2, "same")
    for i, (c, s) in enumerate(MOBILENET_V1_BODY, start=1):
        if separable:
            layers += _conv_bn_act(f"dw{i}", None, 3, s, "same", depthwise=True)
            layers += _conv_bn_act(f"pw{i}", depth(c), 1)
        else:
            layers += _conv_bn_act(f"conv{i + 1}", depth(c), 3, s, "same")
    layers += [GlobalAvgPool2d("avgpool"), Flatten("flatten"), Linear("fc", num_classes),
               Activation("softmax", "softmax")]
    kind = "" if separable else " (standard convs)"
    return Network("mobilenet_v1", (3, resolution, resolution), tuple(layers),
                   f"MobileNet v1 {width} x {resolution}{kind}")


def dcgan_generator(nz: int = 100, ngf: int = 64, nc: int = 3) -> Network:
    """DCGAN generator (Radford et al. 2016) as in the PyTorch example: 1x1 -> 64x64."""
    layers: List = []
    c = ngf * 8
    layers += [ConvTranspose2d("convt1", c, 4, 1, 0, bias=False), BatchNorm2d("bn1"),
               Activation("relu1")]
    for i in range(2, 5):
        c //= 2
        layers += [ConvTranspose2d(f"convt{i}", c, 4, 2, 1, bias=False), BatchNorm2d(f"bn{i}"),
                   Activation(f"relu{i}")]
    layers += [ConvTranspose2d("convt5", nc, 4, 2, 1, bias=False), Activation("tanh", "tanh")]
    return Network("dcgan_generator", (nz, 1, 1), tuple(layers), "DCGAN generator")


def unet(in_channels: int = 1, num_classes: int = 2, base: int = 64, depth: int = 4,
         resolution: int = 572, padding: int = 0) -> Network:
    """U-Net (Ronneberger et al. 2015): 572x572 -> 388x388 with valid 3x3 convs.

    Each skip connection is a concat block whose first path is the identity and whose
    second goes down (max-pool), through the deeper levels, and up (2x2 transposed
    conv); the wider map is centre-cropped (``crop=True``).
    """
    def double(name, c):
        return [Conv2d(name + ".conv1", c, 3, 1, padding), Activation(name + ".relu1"),
                Conv2d(name + ".conv2", c, 3, 1, padding), Activation(name + ".relu2")]

    def level(d: int, c: int) -> List:
        nodes = double(f"enc{d}", c)
        if d < depth:
            down = [MaxPool2d(f"pool{d}", 2, 2)] + level(d + 1, 2 * c) + [
                ConvTranspose2d(f"up{d}", c, 2, 2)]
            nodes += [Block(f"skip{d}", "concat", ((), tuple(down)), crop=True)]
            nodes += double(f"dec{d}", c)
        return nodes

    layers = level(0, base) + [Conv2d("head", num_classes, 1)]
    return Network("unet", (in_channels, resolution, resolution), tuple(layers), "U-Net")


def deeplabv3_aspp(in_channels: int = 2048, resolution: int = 33, num_classes: int = 21,
                   rates: Sequence[int] = (6, 12, 18), channels: int = 256) -> Network:
    """DeepLabv3 head (torchvision ``DeepLabHead``) on a backbone's feature map.

    ASPP: a 1x1 branch, one dilated 3x3 branch per rate (padding = rate) and an
    image-pooling branch (global average, 1x1, bilinear upsampling back), concatenated
    and projected; then a 3x3 conv and the 1x1 classifier.
    """
    branches: List[Tuple] = [tuple(_conv_bn_act("b0", channels, 1))]
    for i, rate in enumerate(rates, start=1):
        branches.append(tuple(_conv_bn_act(f"b{i}", channels, 3, 1, rate, rate)))
    branches.append(tuple([GlobalAvgPool2d("pool")] + _conv_bn_act("pool_conv", channels, 1)
                          + [Upsample("pool_up", size=(resolution, resolution),
                                      mode="bilinear")]))
    layers: List = [Block("aspp", "concat", tuple(branches))]
    layers += _conv_bn_act("project", channels, 1) + [Dropout("project_drop", 0.5)]
    layers += _conv_bn_act("head", channels, 3, 1, 1) + [Conv2d("classifier", num_classes, 1)]
    return Network("deeplabv3_aspp", (in_channels, resolution, resolution), tuple(layers),
                   "DeepLabv3 ASPP head (dilated)")


ZOO: Dict[str, Callable[..., Network]] = {
    "alexnet": alexnet, "vgg16": vgg16, "resnet50": resnet50,
    "mobilenet_v1": mobilenet_v1, "mobilenet_v2": mobilenet_v2,
    "dcgan_generator": dcgan_generator, "unet": unet, "deeplabv3_aspp": deeplabv3_aspp,
}


def build(name: str, **params: Any) -> Network:
    """Build zoo model ``name`` with keyword ``params`` (e.g. ``width=0.5``)."""
    if name not in ZOO:
        raise SpecError("", "model", f"unknown model {name!r}; the zoo has "
                                     f"{', '.join(sorted(ZOO))}")
    try:
        return ZOO[name](**params)
    except TypeError as exc:
        raise SpecError("", "param", f"{name}: {exc}") from None
