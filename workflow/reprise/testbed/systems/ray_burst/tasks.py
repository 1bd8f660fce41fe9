"""What runs inside Ray workers: input staging (from the login node or S3), the parameter
server and its training task, and the heavy image transformation."""

from __future__ import annotations

import io
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import ray
import torch
from PIL import Image
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from reprise.testbed.systems.ray_burst.model import MobileNetV3Small
from reprise.testbed.systems.ray_burst.settings import CACHE, ROLE, S3_CAP, SHARED

_READY = ".complete"


def node_role() -> str:
    return os.environ.get(ROLE, "unknown")


def warm(hold_s: float) -> str:
    """Runs once in a worker process before the first point: the process has imported torch and
    this module, and holds on `hold_s` so that the warm tasks sent together each get their own."""
    time.sleep(hold_s)
    return node_role()


def clear_cache() -> dict[str, Any]:
    """Empty this node's cache (inputs copied by an earlier point, transformed outputs); says
    how many files it removed."""
    cache = Path(os.environ[CACHE])
    removed = 0
    if cache.exists():
        removed = sum(1 for p in cache.rglob("*") if p.is_file())
        shutil.rmtree(cache)
    cache.mkdir(parents=True)
    return {"role": node_role(), "removed": removed}


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.name != _READY)


@ray.remote(num_cpus=0)  # type: ignore[untyped-decorator]
def read_from_login(rel: str) -> dict[str, bytes]:
    """Runs on the login node: the input's files, which Ray then carries to the caller."""
    root = Path(os.environ[SHARED]) / rel
    return {str(p.relative_to(root)): p.read_bytes() for p in _files(root)}


def _from_login(rel: str, dest: Path, login_node: str) -> int:
    reader = read_from_login.options(
        scheduling_strategy=NodeAffinitySchedulingStrategy(login_node, soft=False)
    )
    files = ray.get(reader.remote(rel))
    total = 0
    for name, data in files.items():
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        (dest / name).write_bytes(data)
        total += len(data)
    return total


def _from_s3(rel: str, dest: Path, s3: dict[str, str]) -> int:
    import boto3
    from boto3.s3.transfer import TransferConfig
    from botocore.config import Config

    client = boto3.client(
        "s3",
        endpoint_url=s3.get("endpoint") or None,
        region_name=s3.get("region", "us-east-1"),
        config=Config(connect_timeout=5, read_timeout=60, retries={"max_attempts": 2}),
    )
    cap = int(os.environ.get(S3_CAP, "0") or 0)
    # the study throttles the HPC side's downloads to its link; the cloud side is in-region
    transfer = TransferConfig(max_bandwidth=cap) if cap > 0 else TransferConfig()
    total = 0
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=s3["bucket"], Prefix=rel + "/")
    for page in pages:
        for obj in page.get("Contents", []):
            target = dest / obj["Key"][len(rel) + 1 :]
            target.parent.mkdir(parents=True, exist_ok=True)
            client.download_file(s3["bucket"], obj["Key"], str(target), Config=transfer)
            total += int(obj["Size"])
    return total


def ensure_local(rel: str, data_case: str, login_node: str, s3: dict[str, str]) -> dict[str, Any]:
    """The input's folder on this node, copied here first unless it is already local.

    HPC nodes read the shared file system in place when the data is on the HPC side; every
    other case copies into this node's cache once (a second task finds it there).
    """
    role = node_role()
    if data_case == "hpc" and role in ("login", "hpc"):
        return {"path": str(Path(os.environ[SHARED]) / rel), "bytes": 0, "seconds": 0.0}
    dest = Path(os.environ[CACHE]) / rel
    if (dest / _READY).exists():
        return {"path": str(dest), "bytes": 0, "seconds": 0.0, "cached": True}
    t0 = time.monotonic()
    if dest.exists():
        shutil.rmtree(dest)  # a copy cut short earlier
    dest.mkdir(parents=True)
    total = _from_login(rel, dest, login_node) if data_case == "hpc" else _from_s3(rel, dest, s3)
    (dest / _READY).touch()
    return {"path": str(dest), "bytes": total, "seconds": time.monotonic() - t0}


def _where() -> dict[str, Any]:
    return {
        "node_id": ray.get_runtime_context().get_node_id(),
        "role": node_role(),
        "host": os.uname().nodename,
    }


@ray.remote(num_cpus=0)  # type: ignore[untyped-decorator]
def stage(rel: str, data_case: str, login_node: str, s3: dict[str, str]) -> dict[str, Any]:
    """The data-aware scheduler's transfer: pinned to the chosen node, runs beside its compute."""
    started = time.time()
    got = ensure_local(rel, data_case, login_node, s3)
    return {**_where(), "input": rel, "started": started, "ended": time.time(), **got}


class _ParameterServer:
    """Holds MobileNetV3-small's weights on the login node; applies pushed gradients with SGD."""

    def __init__(self, classes: int, seed: int, lr: float = 0.01) -> None:
        self.lr = lr
        self.reset(classes, seed)

    def reset(self, classes: int, seed: int) -> int:
        """Fresh weights from `seed`, no update applied: the state a new server starts in."""
        torch.manual_seed(seed)
        self.model = MobileNetV3Small(classes)
        self.updates = 0
        return self.updates

    def get_weights(self) -> dict[str, np.ndarray]:
        return {k: v.detach().numpy().copy() for k, v in self.model.state_dict().items()}

    def apply(self, grads: dict[str, np.ndarray]) -> int:
        with torch.no_grad():
            for name, param in self.model.named_parameters():
                param.sub_(self.lr * torch.from_numpy(grads[name]))
        self.updates += 1
        return self.updates


# an actor of zero CPUs: it lives on the login node, which runs no task
ParameterServer: Any = ray.remote(num_cpus=0)(_ParameterServer)


def _load_folder(path: Path, resolution: int) -> tuple[torch.Tensor, torch.Tensor]:
    """ImageFolder layout: one subfolder per class, sorted names give the class index."""
    classes = sorted(p.name for p in path.iterdir() if p.is_dir())
    images, labels = [], []
    for index, cls in enumerate(classes):
        for f in sorted((path / cls).iterdir()):
            with Image.open(f) as img:
                arr = np.asarray(img.convert("RGB").resize((resolution, resolution)))
            images.append(torch.from_numpy(arr.copy()).permute(2, 0, 1))
            labels.append(index)
    x = torch.stack(images).float().div(255.0)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    return (x - mean) / std, torch.tensor(labels)


def train_step(
    ps: Any, rel: str, data_case: str, login_node: str, s3: dict[str, str], spec: dict[str, Any]
) -> dict[str, Any]:
    """Pull weights, one forward/backward pass over the directory, push the gradients."""
    started = time.time()
    got = ensure_local(rel, data_case, login_node, s3)
    t0 = time.monotonic()
    torch.set_num_threads(1)
    model = MobileNetV3Small(int(spec["classes"]))
    model.load_state_dict(
        {k: torch.from_numpy(v) for k, v in ray.get(ps.get_weights.remote()).items()}
    )
    x, y = _load_folder(Path(got["path"]), int(spec["resolution"]))
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()  # type: ignore[no-untyped-call]
    grads = {n: p.grad.numpy() for n, p in model.named_parameters() if p.grad is not None}
    ray.get(ps.apply.remote(grads))
    return _task_record(rel, started, got, t0, loss=float(loss))


def _task_record(
    rel: str, started: float, got: dict[str, Any], t0: float, **extra: Any
) -> dict[str, Any]:
    """What every task reports: where it ran, when, what its input cost to fetch, its compute."""
    return {
        **_where(),
        "input": rel,
        "started": started,
        "ended": time.time(),
        "transfer_bytes": got["bytes"],
        "transfer_s": got["seconds"],
        "compute_s": time.monotonic() - t0,
        **extra,
    }


def _augment(img: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
    """One heavy pass: rotation by resampling, 7x7 Gaussian blur, colour jitter, sharpening."""
    angle = float(torch.rand(1, generator=rng)) * 0.6 - 0.3
    cos, sin = np.cos(angle), np.sin(angle)
    theta = torch.tensor([[[cos, -sin, 0.0], [sin, cos, 0.0]]], dtype=torch.float32)
    grid = torch.nn.functional.affine_grid(theta, list(img.shape), align_corners=False)
    out = torch.nn.functional.grid_sample(img, grid, align_corners=False, padding_mode="reflection")
    k = torch.exp(-((torch.arange(7, dtype=torch.float32) - 3) ** 2) / 4.5)
    kernel = (k[:, None] * k[None, :] / k.sum() ** 2).expand(3, 1, 7, 7).contiguous()
    blurred = torch.nn.functional.conv2d(out, kernel, padding=3, groups=3)
    gain = 0.8 + 0.4 * torch.rand(1, 3, 1, 1, generator=rng)
    return (out + 0.5 * (out - blurred)).mul(gain).clamp(0, 1)


def transform(
    rel: str, data_case: str, login_node: str, s3: dict[str, str], spec: dict[str, Any]
) -> dict[str, Any]:
    """Augment one very large image `passes` times and write the result to the node's disk."""
    started = time.time()
    got = ensure_local(rel, data_case, login_node, s3)
    t0 = time.monotonic()
    torch.set_num_threads(1)
    with Image.open(Path(got["path"]) / "image.png") as img:
        arr = np.asarray(img.convert("RGB")).copy()
    x = torch.from_numpy(arr).permute(2, 0, 1).unsqueeze(0).float().div(255.0)
    rng = torch.Generator().manual_seed(int(spec["seed"]))
    for _ in range(int(spec["passes"])):
        x = _augment(x, rng)
    out = x[0].permute(1, 2, 0).mul(255).byte().numpy()
    buffer = io.BytesIO()
    Image.fromarray(out).save(buffer, format="PNG")
    target = Path(os.environ[CACHE]) / "outputs" / rel.replace("/", "_")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.with_suffix(".png").write_bytes(buffer.getvalue())
    return _task_record(rel, started, got, t0, output_bytes=len(buffer.getvalue()))
