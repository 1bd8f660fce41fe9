"""The model zoo: each paper model at `full` and `tiny` size, its synthetic data, loss, optimizer.

Weights are random and data are drawn from a seeded generator in the real input shapes, so nothing
is downloaded. `full` sizes reproduce the published architectures (parameter counts are tested).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from functools import partial

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from reprise.errors import ConfigError
from reprise.testbed.trainers.names import MODELS, SIZES
from reprise.testbed.trainers.speech import DeepSpeech2, SpeechShape
from reprise.testbed.trainers.text import BertClassifier, GPT2Classifier, TransformerShape
from reprise.testbed.trainers.vision import VGG, VGG16_LAYOUT, InceptionV3, ResNet


@dataclass(frozen=True)
class Batch:
    """One synthetic batch; the length tensors are set only for CTC (speech) models."""

    inputs: Tensor
    targets: Tensor
    input_lengths: Tensor | None = None
    target_lengths: Tensor | None = None

    def to(self, device: torch.device) -> Batch:
        return replace(self, inputs=self.inputs.to(device), targets=self.targets.to(device))

    def __len__(self) -> int:
        return int(self.inputs.shape[0])


Sampler = Callable[[int, torch.Generator], Batch]
LossFn = Callable[[Tensor, Batch], Tensor]
OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]


@dataclass(frozen=True)
class Workload:
    """Everything a training loop needs to train one model at one size."""

    model: str
    size: str
    build: Callable[[], nn.Module]
    sample: Sampler
    loss: LossFn
    optimizer: OptimizerFactory
    output_shape: Callable[[int], tuple[int, ...]]
    input_shape: tuple[int, ...]  # one sample's shape
    clip_grad_norm: float | None = None


def _images(side: int, classes: int, batch: int, gen: torch.Generator) -> Batch:
    return Batch(
        torch.randn(batch, 3, side, side, generator=gen),
        torch.randint(classes, (batch,), generator=gen),
    )


def _tokens(seq: int, vocab: int, labels: int, batch: int, gen: torch.Generator) -> Batch:
    return Batch(
        torch.randint(vocab, (batch, seq), generator=gen),
        torch.randint(labels, (batch,), generator=gen),
    )


def _spectrograms(
    shape: SpeechShape, frames: int, chars: int, batch: int, g: torch.Generator
) -> Batch:
    # Characters exclude the blank (the last class); every utterance fills the whole window.
    return Batch(
        torch.randn(batch, 1, shape.features, frames, generator=g),
        torch.randint(shape.classes - 1, (batch, chars), generator=g),
        torch.full((batch,), frames // 2, dtype=torch.long),
        torch.full((batch,), chars, dtype=torch.long),
    )


def _cross_entropy(logits: Tensor, batch: Batch) -> Tensor:
    return F.cross_entropy(logits, batch.targets)


def _ctc(blank: int, logits: Tensor, batch: Batch) -> Tensor:
    assert batch.input_lengths is not None and batch.target_lengths is not None
    log_probs = F.log_softmax(logits, dim=2).transpose(0, 1)  # CTC wants (time, batch, class)
    return F.ctc_loss(log_probs, batch.targets, batch.input_lengths, batch.target_lengths, blank)


def _sgd(params: Iterable[nn.Parameter]) -> torch.optim.Optimizer:
    # Upstream's image workloads: SGD with Nesterov momentum and weight decay.
    return torch.optim.SGD(params, lr=0.02, momentum=0.9, weight_decay=1e-4, nesterov=True)


def _adamw(lr: float, params: Iterable[nn.Parameter]) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=lr, eps=1e-8)


def _image_workload(
    model: str, size: str, build: Callable[[], nn.Module], side: int, classes: int
) -> Workload:
    return Workload(
        model=model,
        size=size,
        build=build,
        sample=partial(_images, side, classes),
        loss=_cross_entropy,
        optimizer=_sgd,
        output_shape=lambda batch: (batch, classes),
        input_shape=(3, side, side),
    )


def _text_workload(
    model: str, size: str, shape: TransformerShape, seq: int, lr: float, clip: float | None
) -> Workload:
    cls = GPT2Classifier if model == "gpt2" else BertClassifier
    return Workload(
        model=model,
        size=size,
        build=partial(cls, shape),
        sample=partial(_tokens, seq, shape.vocab, shape.labels),
        loss=_cross_entropy,
        optimizer=partial(_adamw, lr),
        output_shape=lambda batch: (batch, shape.labels),
        input_shape=(seq,),
        clip_grad_norm=clip,
    )


def _speech_workload(size: str, shape: SpeechShape, frames: int, chars: int) -> Workload:
    return Workload(
        model="deepspeech2",
        size=size,
        build=partial(DeepSpeech2, shape),
        sample=partial(_spectrograms, shape, frames, chars),
        loss=partial(_ctc, shape.classes - 1),
        optimizer=partial(_adamw, 5e-4),
        output_shape=lambda batch: (batch, frames // 2, shape.classes),
        input_shape=(1, shape.features, frames),
    )


_TINY_VGG = tuple(item if item == "M" else int(item) // 16 for item in VGG16_LAYOUT)
# LibriSpeech utterances average ~12.5 s: ~1000 mel frames at a 200-sample hop, ~180 characters.
_DS2_FULL = SpeechShape(cnn_layers=3, rnn_layers=5, rnn_dim=512, features=128)
_DS2_TINY = SpeechShape(cnn_layers=1, rnn_layers=2, rnn_dim=16, features=16)


def _make(model: str, size: str) -> Workload:
    full = size == "full"
    if model == "resnet50":
        blocks, width, classes, side = (
            ((3, 4, 6, 3), 64, 1000, 224) if full else ((1,) * 4, 8, 10, 32)
        )
        return _image_workload(model, size, partial(ResNet, blocks, width, classes), side, classes)
    if model == "vgg16":
        if full:
            return _image_workload(
                model, size, partial(VGG, VGG16_LAYOUT, 4096, 7, 1000), 224, 1000
            )
        return _image_workload(model, size, partial(VGG, _TINY_VGG, 64, 1, 10), 32, 10)
    if model == "inception3":
        # 75x75 is the smallest input Inception-v3's stride pattern accepts.
        divisor, classes, side = (1, 1000, 299) if full else (16, 10, 75)
        return _image_workload(model, size, partial(InceptionV3, divisor, classes), side, classes)
    if model == "gpt2":
        shape = (
            TransformerShape(12, 768, 12, 50257, 1024)
            if full
            else TransformerShape(2, 32, 2, 256, 16)
        )
        # Upstream clipped GPT-2's gradient norm to 1.0 every step.
        return _text_workload(model, size, shape, shape.max_positions, 2e-5, 1.0)
    if model == "bert":
        shape = (
            TransformerShape(12, 768, 12, 30522, 512)
            if full
            else TransformerShape(2, 32, 2, 256, 16)
        )
        return _text_workload(model, size, shape, shape.max_positions, 2e-5, None)
    if full:
        return _speech_workload(size, _DS2_FULL, frames=1000, chars=180)
    return _speech_workload(size, _DS2_TINY, frames=32, chars=8)


def workload(model: str, size: str) -> Workload:
    """The workload of `model` (an upstream profile name) at `size`; ConfigError lists choices."""
    if model not in MODELS:
        raise ConfigError(f"unknown model {model!r}: choose one of {', '.join(MODELS)}")
    if size not in SIZES:
        raise ConfigError(
            f"unknown model size {size!r} for {model}: choose one of {', '.join(SIZES)}"
        )
    return _make(model, size)
