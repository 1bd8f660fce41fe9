"""Start one FedScale role (aggregator or executor) from a JSON job file written by Reprise.

Usage: python fedscale_init.py JOB.json aggregator
       python fedscale_init.py JOB.json executor RANK

The same script is the entry point of the aggregator and executor images and of the `process`
deployment, so every deployment hands FedScale exactly the same arguments. It only uses the
standard library (and torch, see below) until it hands over to FedScale's own module.
"""

from __future__ import annotations

import json
import logging
import os
import runpy
import sys

MODULES = {
    "aggregator": "fedscale.cloud.aggregation.aggregator",
    "executor": "fedscale.cloud.execution.executor",
}


def argv_for(job: dict[str, object], role: str, rank: int) -> list[str]:
    """FedScale's command line for one role: every job key as --key value, then the role's rank."""
    args: list[str] = []
    for key, value in job.items():
        if isinstance(value, list):
            args += [f"--{key}", *(str(v) for v in value)]
        else:
            args += [f"--{key}", str(value)]
    return [*args, "--this_rank", str(rank)]


def define_missing_torchvision_ops() -> object | None:
    """Let torchvision import beside a CPU-only torch when its compiled ops cannot load.

    PyPI's torchvision wheels are CUDA builds: beside torch+cpu their _C library fails to load
    (it needs libc10_cuda), and torchvision 0.28 then dies at import registering a fake kernel
    for torchvision::nms, an op that was never defined. Defining the schemas of the two ops it
    registers without checking lets the pure-Python parts FedScale uses (models, transforms,
    datasets) import; calling a detection op would still fail with "no kernel".
    """
    import importlib.util

    import torch

    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return None
    try:
        so = os.path.join(spec.submodule_search_locations[0], "_C.so")
        torch.ops.load_library(so)  # type: ignore[no-untyped-call]
        return None
    except OSError:
        pass
    library = torch.library.Library("torchvision", "DEF")  # type: ignore[no-untyped-call]
    library.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")  # type: ignore[no-untyped-call]
    library.define("qnms(Tensor qdets, Tensor scores, float iou_threshold) -> Tensor")  # type: ignore[no-untyped-call]
    return library  # the definitions live as long as this object


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[1] not in MODULES or (argv[1] == "executor" and len(argv) != 3):
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[0]) as fh:
        job = json.load(fh)
    role = argv[1]
    rank = int(argv[2]) if role == "executor" else 0
    # FedScale parses sys.argv when its config module is first imported
    sys.argv = [MODULES[role], *argv_for(job, role, rank)]
    print(
        f"fedscale-init: {role} rank {rank}: {' '.join(sys.argv[1:])}", file=sys.stderr, flush=True
    )
    keep = define_missing_torchvision_ops()
    runpy.run_module(MODULES[role], run_name="__main__", alter_sys=True)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    # FedScale never stops its gRPC server or data-loader threads; a normal exit would wait on them
    del keep
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
