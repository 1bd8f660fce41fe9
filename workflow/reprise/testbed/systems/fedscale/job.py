"""FedScale run settings (config.yaml's testbed.fedscale) and the job file each role reads."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from reprise.errors import ConfigError

DEPLOYMENTS = ("process", "docker", "swarm", "kubernetes")


@dataclass(frozen=True)
class FedScaleSettings:
    """One run of the matrix: where it runs, how many executors, and FedScale's training knobs."""

    deployment: str = "process"
    executors: int = 2
    participants: int = 8
    rounds: int = 12
    seed: int = 0
    model: str = "shufflenet_v2_x0_5"
    learning_rate: float = 0.01
    local_steps: int = 20
    batch_size: int = 16
    eval_interval: int = 1
    port: int = 29650
    timeout_s: float = 900.0
    # any further FedScale argument (config_parser.py's names), passed through unchanged
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.deployment not in DEPLOYMENTS:
            raise ConfigError(
                f"testbed.fedscale: deployment {self.deployment!r} is not one of "
                f"{', '.join(DEPLOYMENTS)}"
            )
        if self.executors < 1 or self.participants < 1 or self.rounds < 1:
            raise ConfigError("testbed.fedscale: executors, participants and rounds must be >= 1")

    @property
    def run_name(self) -> str:
        return (
            f"{self.deployment}-e{self.executors}-p{self.participants}-r{self.rounds}-s{self.seed}"
        )


def settings_matrix(block: Mapping[str, Any]) -> list[FedScaleSettings]:
    """Every run of testbed.fedscale: deployments x executors x participants x rounds x seeds."""
    common = {
        k: block[k]
        for k in (
            "model",
            "learning_rate",
            "local_steps",
            "batch_size",
            "eval_interval",
            "port",
            "timeout_s",
        )
        if k in block
    }
    return [
        FedScaleSettings(
            deployment=d,
            executors=int(e),
            participants=int(p),
            rounds=int(r),
            seed=int(s),
            extra=dict(block.get("extra", {})),
            **common,
        )
        for d in block.get("deployments", ["process"])
        for e in block.get("executors", [2])
        for p in block.get("participants", [8])
        for r in block.get("rounds", [12])
        for s in block.get("seeds", [0])
    ]


def settings_by_name(block: Mapping[str, Any], name: str) -> FedScaleSettings:
    for s in settings_matrix(block):
        if s.run_name == name:
            return s
    raise ConfigError(f"testbed.fedscale has no run {name!r}")


def job_file(
    settings: FedScaleSettings,
    *,
    data_dir: str,
    log_path: str,
    ps_ip: str,
    ps_port: int,
    executor_host: str = "127.0.0.1",
) -> dict[str, Any]:
    """FedScale's arguments for this run (role and rank are added by the init script)."""
    job: dict[str, Any] = {
        "job_name": "reprise",
        "time_stamp": settings.run_name,
        "log_path": log_path,
        "data_set": "femnist",
        "data_dir": data_dir,
        "data_map_file": f"{data_dir}/client_data_mapping/train.csv",
        "model": settings.model,
        "model_zoo": "torchcv",
        "engine": "pytorch",
        "rounds": settings.rounds,
        "num_participants": settings.participants,
        "eval_interval": settings.eval_interval,
        "learning_rate": settings.learning_rate,
        "local_steps": settings.local_steps,
        "batch_size": settings.batch_size,
        "test_bsz": 64,
        # our clients are small: FedScale's default drops clients with under 32 samples
        "filter_less": 0,
        # no data-loader worker processes: 2 cores, and no orphan workers to chase
        "num_loaders": 0,
        "use_cuda": "False",
        "sample_seed": settings.seed,
        "ps_ip": ps_ip,
        "ps_port": ps_port,
        "num_executors": settings.executors,
        # one entry per executor: FedScale counts executors from this string
        "executor_configs": f"{executor_host}:[{settings.executors}]",
        "connection_timeout": 60,
    }
    job.update(settings.extra)
    return job
