"""Image classifiers of the paper: ResNet-50, VGG-16 and Inception-v3 in plain torch.nn."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


def _conv_bn(cin: int, cout: int, kernel: int, stride: int = 1, padding: int = 0) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=False),
        nn.BatchNorm2d(cout),
    )


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (carries the stride), 1x1 expand by 4, plus the identity or a projection."""

    expansion = 4

    def __init__(self, cin: int, width: int, stride: int) -> None:
        super().__init__()
        cout = width * self.expansion
        self.reduce = _conv_bn(cin, width, 1)
        self.spatial = _conv_bn(width, width, 3, stride=stride, padding=1)
        self.expand = _conv_bn(width, cout, 1)
        self.shortcut: nn.Module = (
            nn.Identity() if stride == 1 and cin == cout else _conv_bn(cin, cout, 1, stride=stride)
        )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        y = self.relu(self.reduce(x))
        y = self.relu(self.spatial(y))
        y = self.expand(y)
        out: Tensor = self.relu(y + self.shortcut(x))
        return out


class ResNet(nn.Module):
    """Bottleneck ResNet; blocks (3, 4, 6, 3) with stem width 64 is ResNet-50."""

    def __init__(self, blocks: Sequence[int], width: int, classes: int) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            _conv_bn(3, width, 7, stride=2, padding=3),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2, padding=1),
        )
        stages: list[nn.Module] = []
        cin = width
        for i, count in enumerate(blocks):
            stage_width = width * 2**i
            for j in range(count):
                # Stage 1 keeps the resolution (the stem pooled already); later stages halve it.
                stride = 2 if j == 0 and i > 0 else 1
                stages.append(Bottleneck(cin, stage_width, stride))
                cin = stage_width * Bottleneck.expansion
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: Tensor) -> Tensor:
        x = self.stages(self.stem(x))
        out: Tensor = self.fc(torch.flatten(self.pool(x), 1))
        return out


# VGG-16's thirteen 3x3 convolutions in five groups, each group closed by a 2x2 max pool ("M").
VGG16_LAYOUT: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M",
)  # fmt: skip


class VGG(nn.Module):
    """VGG with ReLU convolutions (no batch norm, as VGG-16) and the three-layer classifier."""

    def __init__(self, layout: Sequence[int | str], hidden: int, pool: int, classes: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for item in layout:
            if item == "M":
                layers.append(nn.MaxPool2d(2, stride=2))
            else:
                assert isinstance(item, int)
                layers += [nn.Conv2d(cin, item, 3, padding=1), nn.ReLU(inplace=True)]
                cin = item
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(pool)
        self.classifier = nn.Sequential(
            nn.Linear(cin * pool * pool, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(0.5),
            nn.Linear(hidden, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(0.5),
            nn.Linear(hidden, classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.classifier(torch.flatten(self.pool(self.features(x)), 1))
        return out


class _ConvBnRelu(nn.Sequential):
    def __init__(
        self,
        cin: int,
        cout: int,
        kernel: int | tuple[int, int],
        stride: int = 1,
        padding: int | tuple[int, int] = 0,
    ) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(cout, eps=0.001),
            nn.ReLU(inplace=True),
        )


class _Widths:
    """Scales Inception-v3's channel counts; `divisor` 1 is the real network."""

    def __init__(self, divisor: int) -> None:
        self.divisor = divisor

    def __call__(self, channels: int) -> int:
        return max(2, channels // self.divisor)


class _InceptionA(nn.Module):
    """35x35 module: 1x1, 5x5, double 3x3 and pooled branches."""

    def __init__(self, cin: int, pool_features: int, w: _Widths) -> None:
        super().__init__()
        self.b1 = _ConvBnRelu(cin, w(64), 1)
        self.b5 = nn.Sequential(_ConvBnRelu(cin, w(48), 1), _ConvBnRelu(w(48), w(64), 5, padding=2))
        self.b3 = nn.Sequential(
            _ConvBnRelu(cin, w(64), 1),
            _ConvBnRelu(w(64), w(96), 3, padding=1),
            _ConvBnRelu(w(96), w(96), 3, padding=1),
        )
        self.bp = nn.Sequential(
            nn.AvgPool2d(3, stride=1, padding=1), _ConvBnRelu(cin, w(pool_features), 1)
        )
        self.out_channels = w(64) + w(64) + w(96) + w(pool_features)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.b1(x), self.b5(x), self.b3(x), self.bp(x)], 1)


class _InceptionB(nn.Module):
    """Grid reduction 35 -> 17."""

    def __init__(self, cin: int, w: _Widths) -> None:
        super().__init__()
        self.b3 = _ConvBnRelu(cin, w(384), 3, stride=2)
        self.b3dbl = nn.Sequential(
            _ConvBnRelu(cin, w(64), 1),
            _ConvBnRelu(w(64), w(96), 3, padding=1),
            _ConvBnRelu(w(96), w(96), 3, stride=2),
        )
        self.pool = nn.MaxPool2d(3, stride=2)
        self.out_channels = w(384) + w(96) + cin

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.b3(x), self.b3dbl(x), self.pool(x)], 1)


class _InceptionC(nn.Module):
    """17x17 module with factorised 7x7 convolutions (1x7 then 7x1)."""

    def __init__(self, cin: int, c7: int, w: _Widths) -> None:
        super().__init__()
        c7 = w(c7)
        self.b1 = _ConvBnRelu(cin, w(192), 1)
        self.b7 = nn.Sequential(
            _ConvBnRelu(cin, c7, 1),
            _ConvBnRelu(c7, c7, (1, 7), padding=(0, 3)),
            _ConvBnRelu(c7, w(192), (7, 1), padding=(3, 0)),
        )
        self.b7dbl = nn.Sequential(
            _ConvBnRelu(cin, c7, 1),
            _ConvBnRelu(c7, c7, (7, 1), padding=(3, 0)),
            _ConvBnRelu(c7, c7, (1, 7), padding=(0, 3)),
            _ConvBnRelu(c7, c7, (7, 1), padding=(3, 0)),
            _ConvBnRelu(c7, w(192), (1, 7), padding=(0, 3)),
        )
        self.bp = nn.Sequential(nn.AvgPool2d(3, stride=1, padding=1), _ConvBnRelu(cin, w(192), 1))
        self.out_channels = 4 * w(192)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.b1(x), self.b7(x), self.b7dbl(x), self.bp(x)], 1)


class _InceptionD(nn.Module):
    """Grid reduction 17 -> 8."""

    def __init__(self, cin: int, w: _Widths) -> None:
        super().__init__()
        self.b3 = nn.Sequential(_ConvBnRelu(cin, w(192), 1), _ConvBnRelu(w(192), w(320), 3, 2))
        self.b7x3 = nn.Sequential(
            _ConvBnRelu(cin, w(192), 1),
            _ConvBnRelu(w(192), w(192), (1, 7), padding=(0, 3)),
            _ConvBnRelu(w(192), w(192), (7, 1), padding=(3, 0)),
            _ConvBnRelu(w(192), w(192), 3, stride=2),
        )
        self.pool = nn.MaxPool2d(3, stride=2)
        self.out_channels = w(320) + w(192) + cin

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.b3(x), self.b7x3(x), self.pool(x)], 1)


class _InceptionE(nn.Module):
    """8x8 module whose 3x3 branches split into parallel 1x3 and 3x1 convolutions."""

    def __init__(self, cin: int, w: _Widths) -> None:
        super().__init__()
        self.b1 = _ConvBnRelu(cin, w(320), 1)
        self.b3_in = _ConvBnRelu(cin, w(384), 1)
        self.b3_a = _ConvBnRelu(w(384), w(384), (1, 3), padding=(0, 1))
        self.b3_b = _ConvBnRelu(w(384), w(384), (3, 1), padding=(1, 0))
        self.dbl_in = nn.Sequential(
            _ConvBnRelu(cin, w(448), 1), _ConvBnRelu(w(448), w(384), 3, padding=1)
        )
        self.dbl_a = _ConvBnRelu(w(384), w(384), (1, 3), padding=(0, 1))
        self.dbl_b = _ConvBnRelu(w(384), w(384), (3, 1), padding=(1, 0))
        self.bp = nn.Sequential(nn.AvgPool2d(3, stride=1, padding=1), _ConvBnRelu(cin, w(192), 1))
        self.out_channels = w(320) + 4 * w(384) + w(192)

    def forward(self, x: Tensor) -> Tensor:
        b3 = self.b3_in(x)
        dbl = self.dbl_in(x)
        return torch.cat(
            [
                self.b1(x),
                self.b3_a(b3),
                self.b3_b(b3),
                self.dbl_a(dbl),
                self.dbl_b(dbl),
                self.bp(x),
            ],
            1,
        )


class InceptionV3(nn.Module):
    """Inception-v3 without the auxiliary head (upstream trained it with aux_logits=False)."""

    def __init__(self, divisor: int, classes: int) -> None:
        super().__init__()
        w = _Widths(divisor)
        self.stem = nn.Sequential(
            _ConvBnRelu(3, w(32), 3, stride=2),
            _ConvBnRelu(w(32), w(32), 3),
            _ConvBnRelu(w(32), w(64), 3, padding=1),
            nn.MaxPool2d(3, stride=2),
            _ConvBnRelu(w(64), w(80), 1),
            _ConvBnRelu(w(80), w(192), 3),
            nn.MaxPool2d(3, stride=2),
        )
        blocks: list[nn.Module] = []
        cin = w(192)

        def add(block: _InceptionA | _InceptionB | _InceptionC | _InceptionD | _InceptionE) -> None:
            nonlocal cin
            blocks.append(block)
            cin = block.out_channels

        for pool_features in (32, 64, 64):
            add(_InceptionA(cin, pool_features, w))
        add(_InceptionB(cin, w))
        for c7 in (128, 160, 160, 192):
            add(_InceptionC(cin, c7, w))
        add(_InceptionD(cin, w))
        add(_InceptionE(cin, w))
        add(_InceptionE(cin, w))
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(0.5)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.pool(self.blocks(self.stem(x)))
        out: Tensor = self.fc(self.dropout(torch.flatten(x, 1)))
        return out
