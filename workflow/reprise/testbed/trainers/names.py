"""Model and size names the trainers accept; importable without torch, so checks stay fast."""

from __future__ import annotations

# The file names upstream uses for its throughput profiles (throughputs_A100/<name>.csv).
MODELS: tuple[str, ...] = ("resnet50", "vgg16", "inception3", "gpt2", "bert", "deepspeech2")

# `full`: the real layer counts, widths and input shapes. `tiny`: the same structure scaled down so
# one CPU iteration takes milliseconds (CPU tests, laptop runs of the testbed).
SIZES: tuple[str, ...] = ("tiny", "full")
