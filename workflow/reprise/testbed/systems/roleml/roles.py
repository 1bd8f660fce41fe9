"""E-Tree learning as RoleML roles: trainers, layered aggregators, the coordinator, a run driver."""

from __future__ import annotations

import csv
import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import torch
from roleml.core.context import ActorProfile, RoleInstanceID
from roleml.core.role.base import Role
from roleml.core.role.channels import Event, Service, Task
from roleml.shared.interfaces import Runnable

from reprise.testbed.systems.roleml.data import load_split
from reprise.testbed.systems.roleml.workload import average, evaluate, lenet5, train_epoch

ROUND_FIELDS = ("round", "accuracy", "loss", "started", "finished", "coordinator_actor")


class EtreeTrainer(Role):
    """A client's trainer: applies the model it is sent, trains one local epoch, returns it."""

    def __init__(
        self,
        data_dir: str,
        client_index: int,
        num_clients: int,
        lr: float,
        batch_size: int,
        seed: int,
    ) -> None:
        super().__init__()
        self.images, self.labels = load_split(Path(data_dir), "train", client_index, num_clients)
        self.model = lenet5(seed)
        self.lr, self.batch_size = lr, batch_size
        self.generator = torch.Generator().manual_seed(seed + client_index)
        self.epochs = 0
        self.lock = threading.Lock()

    @Service("apply-update", expand=True)
    def apply_update(self, _: RoleInstanceID, update: dict[str, Any]) -> None:
        with self.lock:
            self.model.load_state_dict(update)

    @Task("train", expand=True)
    def train(self, _: RoleInstanceID) -> dict[str, Any]:
        with self.lock:
            metrics = train_epoch(
                self.model, self.images, self.labels, self.lr, self.batch_size, self.generator
            )
            self.epochs += 1
            self.logger.info(f"local epoch {self.epochs} loss {metrics['loss']:.4f}")
            return {k: v.detach().clone() for k, v in self.model.state_dict().items()}


class LayeredAggregator(Role):
    """Layer 0 collects trained models from trainers; layer 1 from the layer-0 aggregators.

    `num_steps` > 1 makes a layer-0 aggregator send its average back down and train again before
    it answers (E-Tree's local rounds below the root).
    """

    def __init__(self, layer: int, num_steps: int = 1) -> None:
        super().__init__()
        self.layer, self.num_steps = layer, num_steps
        self.collect = "train" if layer == 0 else "aggregate"
        self.down = "apply-update" if layer == 0 else "dispatch"

    def _sources(self) -> list[RoleInstanceID]:
        return list(self.ctx.relationships.get_relationship(f"source-{self.layer}"))

    @Task("aggregate", expand=True)
    def aggregate(self, _: RoleInstanceID) -> dict[str, Any]:
        sources = self._sources()
        merged: dict[str, Any] = {}
        for step in range(self.num_steps):
            # start every source's task first, so they train in parallel, then wait for all
            pending = [self.call_task(s, self.collect) for s in sources]
            merged = average([p.result() for p in pending])
            if step != self.num_steps - 1:
                self._send_down(sources, merged)
        self.logger.info(f"layer {self.layer}: aggregated {len(sources)} sources")
        return merged

    def _send_down(self, sources: list[RoleInstanceID], update: dict[str, Any]) -> None:
        for source in sources:
            self.call(source, self.down, payloads={"update": update})

    @Service("dispatch", expand=True)
    def dispatch(self, _: RoleInstanceID, update: dict[str, Any]) -> None:
        self._send_down(self._sources(), update)


class EtreeCoordinator(Role):
    """The root of the tree: owns the global model and the round counter, tests every round."""

    round_completed = Event("round-completed")

    def __init__(self, data_dir: str, seed: int, control_dir: str = "") -> None:
        super().__init__()
        self.control = Path(control_dir) if control_dir else None
        self.model = lenet5(seed)
        self.test_images, self.test_labels = load_split(Path(data_dir), "test")
        self.next_round = 0
        self.lock = threading.Lock()

    @Task("run", expand=True)
    def run(self, _: RoleInstanceID, num_rounds: int) -> int:
        with self.lock:
            root = RoleInstanceID.of(f"{self.profile.name}/aggregator-1")
            for _i in range(num_rounds):
                self._hold_if_paused()
                started = time.time()
                state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
                self.call(root, "dispatch", payloads={"update": state})
                self.model.load_state_dict(self.call_task(root, "aggregate").result())
                result = evaluate(self.model, self.test_images, self.test_labels)
                row = {
                    "round": self.next_round,
                    "accuracy": result["accuracy"],
                    "loss": result["loss"],
                    "started": started,
                    "finished": time.time(),
                    "coordinator_actor": self.profile.name,
                }
                self.logger.info(
                    f"round {self.next_round} accuracy {result['accuracy']:.4f} "
                    f"loss {result['loss']:.4f} took {row['finished'] - started:.2f}s"
                )
                self.next_round += 1
                self.round_completed.emit(args=row)
            return self.next_round

    def _hold_if_paused(self) -> None:
        """Between rounds, wait while the offload manager's `pause` file exists (no call is then
        in flight, so a role can be checkpointed without cutting a request)."""
        if self.control is None or not (self.control / "pause").exists():
            return
        (self.control / "paused").write_text(f"{self.next_round}\n")
        self.logger.info(f"paused before round {self.next_round}")
        while (self.control / "pause").exists():
            time.sleep(0.02)
        (self.control / "paused").unlink(missing_ok=True)
        self.logger.info(f"resumed at round {self.next_round}")


class RunDriver(Role, Runnable):
    """The conductor's part: starts the coordinator's rounds and records each one it hears of.

    Options come from the actor spec: `num_rounds` and `rounds_csv` (where rounds are written).
    """

    def __init__(self, num_rounds: int = 0, rounds_csv: str = "") -> None:
        super().__init__()
        self.num_rounds, self.rounds_csv = num_rounds, rounds_csv
        self.finished = threading.Event()

    def on_round(self, _: RoleInstanceID, args: dict[str, Any], __: dict[str, Any]) -> None:
        path = Path(self.rounds_csv)
        new = not path.exists()
        with path.open("a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=[*ROUND_FIELDS, "heard"])
            if new:
                writer.writeheader()
            writer.writerow({**{k: args[k] for k in ROUND_FIELDS}, "heard": time.time()})

    def run(self) -> None:
        coordinator = next(iter(self.ctx.relationships.get_relationship("coordinator")))
        self.subscribe(coordinator, "round-completed", self.on_round)
        self.logger.info(f"driving {self.num_rounds} rounds on {coordinator}")
        done = self.call_task(coordinator, "run", {"num_rounds": self.num_rounds}).result()
        self.logger.info(f"E-Tree finished: {done} rounds")
        self.finished.set()
        # the conductor's job is done: end the actor the way Ctrl-C would (actor.stop() runs)
        os.kill(os.getpid(), signal.SIGINT)

    def stop(self) -> None:
        self.finished.set()


class ContactsRelay(Role, Runnable):
    """The conductor's part when actors move between hosts: an actor's new address, written by
    the run into `contacts.json` of the control folder, goes to this actor and to every other
    one (RoleML's native `update-contacts`; the actors list this role as their `manager`), and
    `contacts-ack.json` answers with what could not be told."""

    def __init__(self, control_dir: str = "") -> None:
        super().__init__()
        self.control = Path(control_dir)
        self.stopping = threading.Event()

    def run(self) -> None:
        seen = 0
        while not self.stopping.wait(0.02):
            try:
                update = json.loads((self.control / "contacts.json").read_text())
            except (FileNotFoundError, ValueError):
                continue
            if int(update["seq"]) <= seen:
                continue
            seen = int(update["seq"])
            actor, address = str(update["actor"]), str(update["address"])
            self.ctx.contacts.add_contact(ActorProfile(actor, address))
            failed: list[str] = []
            for name in self.ctx.contacts.all_actor_names():
                if name == actor:
                    continue
                try:
                    target = RoleInstanceID(name, "actor")
                    self.call(target, "update-contacts", {"contacts": {actor: address}})
                except Exception as exc:  # named in the answer; the run decides
                    failed.append(f"{name}: {exc}")
            self.logger.info(f"contacts: {actor} is at {address} (told all but {failed})")
            answer = self.control / "contacts-ack.json.tmp"
            answer.write_text(json.dumps({"seq": seen, "failed": failed}))
            answer.replace(self.control / "contacts-ack.json")

    def stop(self) -> None:
        self.stopping.set()
