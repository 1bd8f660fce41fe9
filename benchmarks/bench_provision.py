"""Time Docker testbed provisioning: base image, wheelhouse, node image, nodes up and SSH-ready.

Run on demand, never in the test suite (a fresh image build takes minutes):
    .venv/bin/python benchmarks/bench_provision.py [--fresh] [--nodes 3] [--repeat 3]
`--fresh` rebuilds the debootstrap base and the node image without Docker's layer cache;
without it an up-to-date image is reused and only the wheelhouse is rebuilt. Needs a Docker
daemon (tests/infra/start-dockerd.sh) and root for the debootstrap base. Writes
results/benchmarks/provision.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from reprise.testbed.image import DEBIAN_BOOTSTRAP, build_node_image
from reprise.testbed.inventory import load_inventory
from reprise.testbed.provision.docker import DockerProvider

REPO = Path(__file__).resolve().parents[1]


def time_image(args: argparse.Namespace) -> dict[str, Any]:
    work = REPO / "results" / "benchmarks" / "provision_image"
    record = work / "image.json"
    start = time.monotonic()
    build_node_image(
        workdir=work,
        log=work / "build.log",
        record=record,
        tag=args.tag,
        base=args.base,
        fresh=args.fresh,
    )
    data: dict[str, Any] = json.loads(record.read_text())
    data["total_seconds"] = round(time.monotonic() - start, 1)
    data["wheel_count"] = len(data.pop("wheels"))
    return data


def time_nodes(args: argparse.Namespace) -> list[dict[str, float]]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-provision-") as tmp:
        inventory_path = Path(tmp) / "bench-provision.yaml"
        group = {"group": "default", "count": args.nodes, "cpus": 1.0, "memory": "2g"}
        doc = {"provider": "docker", "docker": {"image": args.tag, "groups": [group]}}
        inventory_path.write_text(yaml.safe_dump(doc))
        inventory = load_inventory(inventory_path)
        for _ in range(args.repeat):
            provider = DockerProvider(inventory, Path(tmp) / "state")
            t0 = time.monotonic()
            try:
                provider.provision()
                up = time.monotonic() - t0
            finally:
                t1 = time.monotonic()
                provider.teardown()
            rows.append(
                {
                    "nodes": args.nodes,
                    "start_s": round(provider.timings.get("start_s", float("nan")), 2),
                    "ssh_ready_s": round(provider.timings.get("ssh_ready_s", float("nan")), 2),
                    "provision_s": round(up, 2),
                    "teardown_s": round(time.monotonic() - t1, 2),
                }
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base", default=DEBIAN_BOOTSTRAP)
    parser.add_argument("--tag", default="reprise-node:latest")
    parser.add_argument("--fresh", action="store_true", help="rebuild without any cache")
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=REPO / "results/benchmarks/provision.json")
    args = parser.parse_args()
    image = time_image(args)
    nodes = time_nodes(args)
    result = {"image": image, "nodes": nodes, "cpus": os.cpu_count(), "load": os.getloadavg()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print("| step | seconds |\n|---|---|")
    for key in ("base_seconds", "wheelhouse_seconds", "build_seconds", "total_seconds"):
        print(f"| {key.removesuffix('_seconds')} | {image[key]} |")
    print(
        f"\nimage {image['tag']} {image['image_id'][:19]}: {image['size_bytes'] / 1e9:.2f} GB, "
        f"{image['wheel_count']} wheels, built={image['built']}\n"
    )
    print("| nodes | start s | SSH-ready s | provision s | teardown s |\n|---|---|---|---|---|")
    for row in nodes:
        print(
            f"| {row['nodes']} | {row['start_s']} | {row['ssh_ready_s']} | "
            f"{row['provision_s']} | {row['teardown_s']} |"
        )


if __name__ == "__main__":
    main()
