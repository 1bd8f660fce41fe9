"""ElasticFlow's own hand-written bound on the GPUs a job may use (docs/policies/elasticflow.md)."""

from __future__ import annotations


def max_gpu_elasticflow(gpu_type: str, model: str, batch_size: int) -> int:
    """The hand-written table that ElasticFlow's own policies use."""
    if gpu_type == "T4":
        if model in ("bert", "cifar10"):
            return 16
        if model == "deepspeech2" and batch_size == 320:
            return 32
        if model == "yolov3":
            return 4
        if model == "ncf":
            return 1
        return 64
    if model == "deepspeech2":
        return batch_size
    if model == "gpt2" and batch_size in (128, 256):
        return 16 if batch_size == 128 else 32
    if model == "bert":
        return 8 if batch_size == 64 else 16
    if model == "inception3" and batch_size in (64, 128):
        return 16 if batch_size == 64 else 32
    if model == "resnet50":
        return 32 if batch_size == 64 else min(batch_size, 64)
    if model == "vgg16" and batch_size == 64:
        return 32
    return min(batch_size, 64)
