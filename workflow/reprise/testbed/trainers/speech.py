"""DeepSpeech2-like speech recogniser: strided conv, residual convs, bidirectional GRUs, CTC output.

The layout follows the model upstream trained (3 residual CNN layers, 5 BiGRU layers of 512,
29 characters, 128 mel features) with one deliberate difference: upstream passed batch_first only
to its first GRU, so later GRUs ran over the batch axis; here every GRU runs over time.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn
from torch.nn import functional as F


@dataclass(frozen=True)
class SpeechShape:
    cnn_layers: int
    rnn_layers: int
    rnn_dim: int
    features: int  # mel bins of the input spectrogram
    classes: int = 29  # blank (the last index), apostrophe, space and a-z
    channels: int = 32
    dropout: float = 0.1


class _FeatureNorm(nn.Module):
    """LayerNorm over the feature axis of a (batch, channel, feature, time) map."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(features)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.norm(x.transpose(2, 3)).transpose(2, 3)
        return out


class _ResidualConv(nn.Module):
    def __init__(self, channels: int, features: int, dropout: float) -> None:
        super().__init__()
        self.body = nn.Sequential(
            _FeatureNorm(features),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Conv2d(channels, channels, 3, padding=1),
            _FeatureNorm(features),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Conv2d(channels, channels, 3, padding=1),
        )

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = x + self.body(x)
        return out


class _BiGRU(nn.Module):
    def __init__(self, size: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(size)
        self.gru = nn.GRU(size, hidden, batch_first=True, bidirectional=True)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        y, _ = self.gru(F.gelu(self.norm(x)))
        out: Tensor = self.drop(y)
        return out


class DeepSpeech2(nn.Module):
    """Maps a (batch, 1, features, frames) spectrogram to (batch, frames // 2, classes) logits."""

    def __init__(self, shape: SpeechShape) -> None:
        super().__init__()
        half = shape.features // 2
        self.conv = nn.Conv2d(1, shape.channels, 3, stride=2, padding=1)
        self.res = nn.Sequential(
            *(_ResidualConv(shape.channels, half, shape.dropout) for _ in range(shape.cnn_layers))
        )
        self.project = nn.Linear(half * shape.channels, shape.rnn_dim)
        self.rnns = nn.Sequential(
            *(
                _BiGRU(shape.rnn_dim if i == 0 else 2 * shape.rnn_dim, shape.rnn_dim, shape.dropout)
                for i in range(shape.rnn_layers)
            )
        )
        self.classifier = nn.Sequential(
            nn.Linear(2 * shape.rnn_dim, shape.rnn_dim),
            nn.GELU(),
            nn.Dropout(shape.dropout),
            nn.Linear(shape.rnn_dim, shape.classes),
        )

    def forward(self, spectrogram: Tensor) -> Tensor:
        x = self.res(self.conv(spectrogram))
        batch, channels, features, frames = x.shape
        x = x.reshape(batch, channels * features, frames).transpose(1, 2)
        out: Tensor = self.classifier(self.rnns(self.project(x)))
        return out
