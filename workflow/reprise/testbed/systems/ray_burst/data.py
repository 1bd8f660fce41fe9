"""The study's inputs, generated (no download): ImageFolder directories and very large images,
cut from the photographs matplotlib ships as package data, with a seed."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from PIL import Image

from reprise.testbed.systems.ray_burst.settings import DataSize

SOURCES = ("grace_hopper.jpg", "Minduka_Present_Blue_Pack.png", "logo2.png")
PS_DIR = "imagefolders"
LARGE_DIR = "large"


def _sources() -> list[np.ndarray]:
    folder = Path(matplotlib.get_data_path()) / "sample_data"
    images = []
    for name in SOURCES:
        with Image.open(folder / name) as img:
            images.append(np.asarray(img.convert("RGB")))
    return images


def _patch(rng: np.random.Generator, sources: list[np.ndarray], side: int) -> Image.Image:
    """A random crop of a random photo, resized to `side`, flipped and colour-jittered."""
    src = sources[int(rng.integers(len(sources)))]
    h, w = src.shape[:2]
    crop = int(rng.integers(min(h, w) // 3, min(h, w) + 1))
    y, x = int(rng.integers(0, h - crop + 1)), int(rng.integers(0, w - crop + 1))
    img = Image.fromarray(src[y : y + crop, x : x + crop]).resize(
        (side, side), Image.Resampling.BILINEAR
    )
    arr = np.asarray(img).astype(np.float32)
    if rng.random() < 0.5:
        arr = arr[:, ::-1]
    gain = rng.uniform(0.7, 1.3, size=3).astype(np.float32)
    noise = rng.normal(0, 6, size=arr.shape).astype(np.float32)  # sensor noise: real PNG sizes
    return Image.fromarray(np.clip(arr * gain + noise, 0, 255).astype(np.uint8))


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def generate(out: Path, size: DataSize, seed: int) -> dict[str, Any]:
    """Write the inputs under `out` and return the manifest (also written as manifest.json).

    Each input is a relative folder: a parameter-server task reads one ImageFolder directory
    (class subfolders of PNGs), a transformation task one folder holding one large image.
    """
    rng = np.random.default_rng(seed)
    sources = _sources()
    inputs: list[dict[str, Any]] = []
    for d in range(size.ps_dirs):
        rel = f"{PS_DIR}/dir{d:03d}"
        files = []
        for k in range(size.images_per_dir):
            cls = k % size.classes
            path = out / rel / f"class{cls:02d}" / f"img{k:04d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            _patch(rng, sources, size.resolution).save(path)
            files.append(path)
        inputs.append(
            {
                "workload": "parameter_server",
                "input": rel,
                "files": len(files),
                "bytes": sum(p.stat().st_size for p in files),
            }
        )
    tile = max(64, size.large_side // 4)
    for i in range(size.large_images):
        rel = f"{LARGE_DIR}/image{i:03d}"
        canvas = Image.new("RGB", (size.large_side, size.large_side))
        for y in range(0, size.large_side, tile):
            for x in range(0, size.large_side, tile):
                canvas.paste(_patch(rng, sources, tile), (x, y))
        path = out / rel / "image.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        canvas.save(path)
        inputs.append(
            {"workload": "transform", "input": rel, "files": 1, "bytes": path.stat().st_size}
        )
    manifest = {
        "seed": seed,
        "size": {k: getattr(size, k) for k in size.__dataclass_fields__},
        "sources": list(SOURCES),
        "inputs": inputs,
        "sha256": {str(p.relative_to(out)): _sha(p) for p in sorted(out.rglob("*.png"))},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest
