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
import sys
from typing import Any

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


SEED_KEY = "reprise_client_seed"


def client_seed(seed: int, round_: int, client_id: object) -> int:
    """The seed one client's local training starts from: a function of the run's seed, the
    aggregator's round and the client only, never of which executor happens to train it."""
    return (int(seed) * 1_000_003 + int(round_) * 7_919 + int(str(client_id))) % (2**31 - 1)


# Why the patches below: FedScale seeds each executor once and then trains whichever clients the
# aggregator hands it, so a client's shuffling draws from a stream shaped by the clients that
# executor trained before (and, with several executors, by which one asked first); and its
# aggregator sums updates in arrival order. Same-seed runs then differ from round 1 on. The
# aggregator now puts a per-(round, client) seed in each client's training config, the executor
# reseeds torch, numpy, random and its data partitioner's own Random from it before training,
# and the aggregator folds a round's updates in client order. They patch FedScale's classes
# because the roles are started by importing its modules (see run_role).


def hand_out_client_seeds(aggregator_class: type) -> None:
    """The aggregator adds client_seed(...) to every client's training config."""
    conf_of = aggregator_class.get_client_conf  # type: ignore[attr-defined]

    def get_client_conf(self: Any, client_id: object) -> dict[str, object]:
        conf = dict(conf_of(self, client_id))
        conf[SEED_KEY] = client_seed(self.args.sample_seed, self.round, client_id)
        return conf

    aggregator_class.get_client_conf = get_client_conf  # type: ignore[attr-defined]


def aggregate_in_client_order(aggregator_class: type) -> None:
    """The aggregator sums a round's updates in client order, not arrival order.

    FedScale folds each update into the running sum as it arrives; float addition is not
    associative, so two runs whose executors finish in another order end the round with
    slightly different models, and the difference grows over the rounds. Here the updates of a
    round are kept until the last one arrives and then folded in client-id order through
    FedScale's own aggregation step (its first/last-result logic sees the usual counts). The
    cost is holding one round's updates in memory at once.
    """
    fold = aggregator_class.update_weight_aggregation  # type: ignore[attr-defined]

    def update_weight_aggregation(self: Any, results: dict[str, Any]) -> None:
        pending: list[dict[str, Any]] = self.__dict__.setdefault("_reprise_pending", [])
        pending.append(results)
        if self.model_in_update < self.tasks_round:
            return
        arrived = self.model_in_update
        for count, update in enumerate(sorted(pending, key=lambda r: int(r["client_id"])), 1):
            self.model_in_update = count
            fold(self, update)
        self.model_in_update = arrived
        pending.clear()

    aggregator_class.update_weight_aggregation = update_weight_aggregation  # type: ignore[attr-defined]


def reseed_before_training(executor_class: type) -> None:
    """The executor reseeds from the client's config before training it."""
    import random

    import numpy as np
    import torch

    train = executor_class.training_handler  # type: ignore[attr-defined]

    def training_handler(self: Any, client_id: object, conf: Any, model: object) -> object:
        value = getattr(conf, SEED_KEY, None)
        if value is not None:
            torch.manual_seed(value)
            np.random.seed(value)
            random.seed(value)
            # the data partitioner shuffles a client's samples with a Random of its own
            partitioner_rng = getattr(getattr(self, "training_sets", None), "rng", None)
            if partitioner_rng is not None:
                partitioner_rng.seed(value)
        return train(self, client_id, conf, model)

    executor_class.training_handler = training_handler  # type: ignore[attr-defined]


def run_role(role: str) -> None:
    """What FedScale's own `__main__` of the role does (the class built from the parsed
    arguments, then run), with the seeding patch of that role."""
    import importlib

    module = importlib.import_module(MODULES[role])
    if role == "aggregator":
        hand_out_client_seeds(module.Aggregator)
        aggregate_in_client_order(module.Aggregator)
        module.Aggregator(module.parser.args).run()
    else:
        reseed_before_training(module.Executor)
        module.Executor(module.parser.args).run()


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
    run_role(role)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    # FedScale never stops its gRPC server or data-loader threads; a normal exit would wait on them
    del keep
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
