"""MobileNetV3-small (Howard et al., 2019) in plain torch.nn, for the parameter-server workload."""

from __future__ import annotations

from torch import Tensor, nn

# One row per inverted-residual block of the small variant:
# (kernel, expanded channels, output channels, squeeze-excite, hard-swish, stride)
SMALL_BLOCKS: tuple[tuple[int, int, int, bool, bool, int], ...] = (
    (3, 16, 16, True, False, 2),
    (3, 72, 24, False, False, 2),
    (3, 88, 24, False, False, 1),
    (5, 96, 40, True, True, 2),
    (5, 240, 40, True, True, 1),
    (5, 240, 40, True, True, 1),
    (5, 120, 48, True, True, 1),
    (5, 144, 48, True, True, 1),
    (5, 288, 96, True, True, 2),
    (5, 576, 96, True, True, 1),
    (5, 576, 96, True, True, 1),
)


def _divisible(value: float, divisor: int = 8) -> int:
    """Round channel counts to a multiple of 8 without losing more than 10 % (the paper's rule)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def _conv_bn_act(
    cin: int, cout: int, kernel: int, stride: int, groups: int, act: nn.Module | None
) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout, eps=0.001, momentum=0.01),
    ]
    if act is not None:
        layers.append(act)
    return nn.Sequential(*layers)


class SqueezeExcite(nn.Module):
    """Channel attention: global pool, bottleneck of a quarter width, hard-sigmoid gate."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        hidden = _divisible(channels // 4)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.reduce = nn.Conv2d(channels, hidden, 1)
        self.expand = nn.Conv2d(hidden, channels, 1)
        self.relu = nn.ReLU(inplace=True)
        self.gate = nn.Hardsigmoid(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        scale = self.gate(self.expand(self.relu(self.reduce(self.pool(x)))))
        out: Tensor = x * scale
        return out


class InvertedResidual(nn.Module):
    """1x1 expansion, depthwise kxk (carries the stride), optional SE, linear 1x1 projection."""

    def __init__(
        self, cin: int, kernel: int, expanded: int, cout: int, se: bool, hswish: bool, stride: int
    ) -> None:
        super().__init__()
        act: type[nn.Module] = nn.Hardswish if hswish else nn.ReLU
        layers: list[nn.Module] = []
        if expanded != cin:
            layers.append(_conv_bn_act(cin, expanded, 1, 1, 1, act(inplace=True)))
        layers.append(_conv_bn_act(expanded, expanded, kernel, stride, expanded, act(inplace=True)))
        if se:
            layers.append(SqueezeExcite(expanded))
        layers.append(_conv_bn_act(expanded, cout, 1, 1, 1, None))
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: Tensor) -> Tensor:
        y: Tensor = self.block(x)
        return x + y if self.residual else y


class MobileNetV3Small(nn.Module):
    """2.5 M parameters at 1,000 classes; input 3x224x224 (any size divisible by 32 works)."""

    def __init__(self, classes: int = 1000) -> None:
        super().__init__()
        layers: list[nn.Module] = [_conv_bn_act(3, 16, 3, 2, 1, nn.Hardswish(inplace=True))]
        cin = 16
        for kernel, expanded, cout, se, hswish, stride in SMALL_BLOCKS:
            layers.append(InvertedResidual(cin, kernel, expanded, cout, se, hswish, stride))
            cin = cout
        layers.append(_conv_bn_act(cin, 6 * cin, 1, 1, 1, nn.Hardswish(inplace=True)))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(
            nn.Linear(6 * cin, 1024),
            nn.Hardswish(inplace=True),
            nn.Dropout(0.2, inplace=True),
            nn.Linear(1024, classes),
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.classifier(self.pool(self.features(x)).flatten(1))
        return out
