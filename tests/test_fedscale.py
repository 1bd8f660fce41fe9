"""FedScale: digits and data_path checks, log parsing, job files, Kubernetes objects, tables, and
real runs of FedScale 1.0 as local processes (faults included) and through `snakemake fedscale`."""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from reprise.analysis.fedscale import rounds_table, runs_table
from reprise.errors import ConfigError, DataError, ProvisionError, TestbedError
from reprise.testbed.systems.fedscale.dataset import DigitsSpec, build_digits, check_data_path
from reprise.testbed.systems.fedscale.job import (
    FedScaleSettings,
    job_file,
    settings_by_name,
    settings_matrix,
)
from reprise.testbed.systems.fedscale.logs import parse_aggregator_log
from reprise.testbed.systems.fedscale.supervise import require_port_free

REPO = Path(__file__).resolve().parents[1]
INIT = REPO / "workflow" / "testbed" / "fedscale" / "fedscale_init.py"

try:
    import fedscale  # noqa: F401

    HAVE_FEDSCALE = True
except ImportError:
    HAVE_FEDSCALE = False
needs_fedscale = pytest.mark.skipif(
    not HAVE_FEDSCALE,
    reason='the fedscale extra is not installed: pip install -c requirements.lock -e ".[fedscale]"',
)


@pytest.fixture(scope="session")
def digits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("sklearn", reason="scikit-learn comes with the fedscale extra")
    root = tmp_path_factory.mktemp("digits")
    build_digits(root, DigitsSpec(clients=20, seed=0))
    return root


# ---- data set -------------------------------------------------------------------------------


def _mapping(root: Path, split: str) -> list[list[str]]:
    with (root / "client_data_mapping" / f"{split}.csv").open() as fh:
        return list(csv.reader(fh))


def test_digits_are_femnist_format_non_iid_and_every_sample_exists(digits: Path) -> None:
    train = _mapping(digits, "train")
    test = _mapping(digits, "test")
    assert train[0] == ["client_id", "sample_path", "label_name", "label_id"]
    assert len(train) - 1 + len(test) - 1 == 1797  # every digit of scikit-learn's set, once
    clients: dict[str, set[str]] = {}
    for cid, path, name, label in train[1:]:
        assert (digits / path).is_file()
        assert name == label
        clients.setdefault(cid, set()).add(label)
    assert len(clients) == 20
    # label skew: most clients miss some digits (an IID split would give each all ten)
    assert sum(len(labels) < 10 for labels in clients.values()) >= 10
    summary = check_data_path(digits)
    assert (summary.clients, summary.classes) == (20, 10)


def test_digits_are_the_same_bytes_for_the_same_seed(tmp_path: Path, digits: Path) -> None:
    # (the digits fixture skips without scikit-learn, so this test does too)
    again = build_digits(tmp_path / "again", DigitsSpec(clients=20, seed=0))
    first = json.loads((digits / "manifest.json").read_text())
    assert again["sha256"] == first["sha256"]
    other = build_digits(tmp_path / "other", DigitsSpec(clients=20, seed=1))
    assert other["sha256"] != first["sha256"]


def test_missing_data_path_names_the_key(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"does not exist.*testbed\.fedscale\.data_path"):
        check_data_path(tmp_path / "nowhere")


def test_data_path_without_mapping_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"client_data_mapping/train\.csv: missing"):
        check_data_path(tmp_path)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("client_id,sample_path\n", r"line 1 should be a header of 4 columns"),
        ("a,b,c,d\nc1,x.png,one\n", r"train\.csv:2: 3 column\(s\)"),
        ("a,b,c,d\nc1,x.png,one,one\n", r"train\.csv:2: label_id 'one' is not an integer"),
        ("a,b,c,d\nc1,gone.png,1,1\n", r"train\.csv:2: sample 'gone\.png' not found"),
        ("a,b,c,d\n", r"no samples after the header"),
    ],
)
def test_malformed_mapping_names_file_line_and_fix(tmp_path: Path, body: str, message: str) -> None:
    (tmp_path / "client_data_mapping").mkdir()
    (tmp_path / "client_data_mapping" / "train.csv").write_text(body)
    with pytest.raises(DataError, match=message):
        check_data_path(tmp_path)


# ---- settings and job files ------------------------------------------------------------------


def test_matrix_has_one_run_per_combination_and_names_resolve() -> None:
    block = {"deployments": ["process", "docker"], "executors": [1, 2], "seeds": [0, 3]}
    runs = settings_matrix(block)
    assert len(runs) == 8
    assert len({r.run_name for r in runs}) == 8
    assert settings_by_name(block, "docker-e2-p8-r12-s3").seed == 3
    with pytest.raises(ConfigError, match="no run 'swarm-e2"):
        settings_by_name(block, "swarm-e2-p8-r12-s0")


def test_unknown_deployment_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="deployment 'podman'"):
        FedScaleSettings(deployment="podman")


def test_job_file_counts_executors_and_passes_extra_keys() -> None:
    s = FedScaleSettings(executors=3, extra={"overcommitment": 1.0})
    job = job_file(s, data_dir="/d", log_path="/l", ps_ip="aggregator", ps_port=1234)
    assert job["executor_configs"] == "127.0.0.1:[3]"
    assert job["num_executors"] == 3
    assert job["data_map_file"] == "/d/client_data_mapping/train.csv"
    assert job["overcommitment"] == 1.0
    assert (job["ps_ip"], job["ps_port"]) == ("aggregator", 1234)


def test_init_script_refuses_bad_usage() -> None:
    out = subprocess.run(
        [sys.executable, str(INIT), "job.json", "executor"], capture_output=True, text=True
    )
    assert out.returncode == 2
    assert "Usage" in out.stderr


# ---- FedScale's log --------------------------------------------------------------------------

LOG = """\
(12-06) 05:57:19 INFO     [aggregator.py:581] Wall clock: 0 s, round: 1, Planned participants: 0, \
Succeed participants: 0, Training loss: 0.0
(12-06) 05:57:25 INFO     [aggregator.py:546] FL Testing in round: 1, virtual_clock: 0.0, results: \
{'round': 1, 'clock': 0.0, 'top_1': 0.0, 'top_5': 0.117, 'loss': 4.126}
(12-06) 05:57:40 INFO     [aggregator.py:581] Wall clock: 27930 s, round: 2, Planned participants: \
10, Succeed participants: 8, Training loss: 3.866
(12-06) 05:57:44 INFO     [aggregator.py:546] FL Testing in round: 2, virtual_clock: 27930.02, \
results: {'round': 2, 'clock': 27930.02, 'top_1': 0.25, 'top_5': 0.5, 'loss': 3.4}
(12-06) 05:57:55 INFO     [aggregator.py:581] Wall clock: 55860 s, round: 3, Planned participants: \
10, Succeed participants: 8, Training loss: 2.5
"""


def test_log_gives_accuracy_loss_and_round_time(tmp_path: Path) -> None:
    log = tmp_path / "log"
    log.write_text(LOG)
    rows = parse_aggregator_log(log, year=2026)
    assert [r.round for r in rows] == [1, 2]  # round 3's line is the shutdown: not a round
    assert (rows[0].test_top1, rows[0].train_loss, rows[0].round_s) == (0.0, 3.866, 21.0)
    assert (rows[1].test_top1, rows[1].test_loss, rows[1].train_loss) == (0.25, 3.4, 2.5)
    assert (rows[1].started_s, rows[1].round_s) == (21.0, 15.0)


def test_log_without_rounds_is_a_testbed_error(tmp_path: Path) -> None:
    log = tmp_path / "log"
    log.write_text("(12-06) 05:57:19 INFO     [fllibs.py:97] Initializing the model ...\n")
    with pytest.raises(TestbedError, match="no round was logged"):
        parse_aggregator_log(log)


# ---- tables ----------------------------------------------------------------------------------


def _record(root: Path, deployment: str, accs: list[float], round_s: float) -> Path:
    run = root / deployment
    run.mkdir()
    keys = {"deployment": deployment, "executors": 2, "participants": 8, "rounds": 3, "seed": 0}
    (run / "summary.json").write_text(json.dumps(keys))
    pd.DataFrame(
        {
            "round": range(1, len(accs) + 1),
            "train_loss": 1.0,
            "test_top1": accs,
            "test_top5": 1.0,
            "test_loss": 1.0,
            "started_s": 0.0,
            "round_s": round_s,
        }
    ).to_csv(run / "rounds.csv", index=False)
    return run


def test_runs_table_compares_each_deployment_with_processes(tmp_path: Path) -> None:
    runs = [
        _record(tmp_path, "process", [0.1, 0.5, 0.8], 2.0),
        _record(tmp_path, "docker", [0.1, 0.52, 0.7], 3.0),
    ]
    table = rounds_table(runs)
    assert len(table) == 6
    out = runs_table(table, tolerance=0.02).set_index("deployment")
    assert out.loc["process", "max_accuracy_gap"] == 0
    assert out.loc["docker", "max_accuracy_gap"] == pytest.approx(0.1)
    assert out.loc["docker", "late_accuracy_gap"] == pytest.approx(0.08 / 3)
    assert not out.loc["docker", "same_curve"]
    assert runs_table(table, tolerance=0.05).set_index("deployment").loc["docker", "same_curve"]
    assert out.loc["docker", "round_time_vs_process"] == pytest.approx(1.5)
    assert out.loc["docker", "final_accuracy"] == pytest.approx(0.7)


# ---- Kubernetes objects ----------------------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []

    def __getattr__(self, name: str) -> Any:
        def call(namespace: str, body: Any) -> None:
            self.calls.append((name, namespace, body.metadata.name))

        return call


def test_kubernetes_objects_validate_offline_and_are_created_in_order() -> None:
    from reprise.testbed.systems.fedscale.kubernetes import (
        KubeOptions,
        as_dicts,
        build_objects,
        submit,
        validate,
    )

    opts = KubeOptions(namespace="fl", registry="reg.example/", data_claim="femnist")
    objects = build_objects(FedScaleSettings(executors=2), opts)
    docs = as_dicts(objects)
    validate(docs)
    kinds = [d["kind"] for d in docs]
    assert kinds == ["ConfigMap", "Service", "Job", "Job", "Job"]
    job = json.loads(docs[0]["data"]["job.json"])
    assert job["ps_ip"] == f"{docs[1]['metadata']['name']}.fl.svc"
    pod = docs[3]["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"] == "reg.example/reprise-fedscale-executor:latest"
    assert pod["containers"][0]["args"] == ["1"]
    assert pod["volumes"][0]["persistentVolumeClaim"]["claimName"] == "femnist"
    assert docs[2]["spec"]["backoffLimit"] == 0
    assert "nvidia.com/gpu" not in pod["containers"][0]["resources"]["limits"]
    core, batch = Recorder(), Recorder()
    done = submit(objects, core, batch, "fl")
    assert [c[0] for c in core.calls] == [
        "create_namespaced_config_map",
        "create_namespaced_service",
    ]
    assert [c[2] for c in batch.calls] == [d["metadata"]["name"] for d in docs[2:]]
    assert done[0].startswith("ConfigMap/")


def test_kubernetes_gpu_request_and_invalid_object_is_named() -> None:
    from reprise.testbed.systems.fedscale.kubernetes import (
        KubeOptions,
        as_dicts,
        build_objects,
        validate,
    )

    docs = as_dicts(build_objects(FedScaleSettings(executors=1), KubeOptions(use_cuda=True)))
    limits = docs[3]["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert limits["nvidia.com/gpu"] == "1"
    docs[3]["spec"]["template"]["spec"]["containers"][0]["imagee"] = "typo"
    with pytest.raises(ProvisionError, match=r"Job/.*executor1.*imagee"):
        validate(docs)


# ---- ports -----------------------------------------------------------------------------------


def test_port_in_use_is_named_with_the_fix() -> None:
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(
            TestbedError, match=rf"port {port} .*already in use.*testbed\.fedscale\.port"
        ):
            require_port_free(port, "test")


# ---- real FedScale runs as local processes ----------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _alive_groups(processes: list[dict[str, Any]]) -> list[int]:
    alive = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if stat[0] != "Z" and int(stat[2]) in {p["pgid"] for p in processes}:
            alive.append(int(entry))
    return alive


def _tiny(**kw: Any) -> FedScaleSettings:
    base: dict[str, Any] = {
        "rounds": 4,
        "participants": 4,
        "local_steps": 5,
        "port": _free_port(),
        "timeout_s": 600,
    }
    return FedScaleSettings(**(base | kw))


@pytest.mark.slow
@needs_fedscale
def test_process_run_trains_and_leaves_nothing(tmp_path: Path, digits: Path) -> None:
    from reprise.testbed.systems.fedscale.run import run_fedscale

    seen: list[dict[str, Any]] = []

    def watch(msg: str) -> None:
        state = tmp_path / "out" / "work" / "processes.json"
        if state.is_file():
            seen.extend(json.loads(state.read_text()))

    summary = run_fedscale(_tiny(), digits, tmp_path / "out", progress=watch)
    rounds = pd.read_csv(tmp_path / "out" / "rounds.csv")
    assert list(rounds["round"]) == [1, 2, 3]
    assert rounds["test_top1"].notna().all()
    assert rounds["round_s"].notna().all() and (rounds["round_s"] >= 0).all()
    assert summary["rounds_completed"] == 3
    assert summary["final_accuracy"] > summary["first_accuracy"]
    job = json.loads((tmp_path / "out" / "job.json").read_text())
    assert job["num_participants"] == 4
    assert (tmp_path / "out" / "logs" / "aggregator.log").is_file()
    assert {p["name"].split(" ")[0] for p in seen} >= {"aggregator", "executor"}
    assert _alive_groups(seen) == []


def _client_losses(log_dir: Path) -> dict[int, list[float]]:
    """Each client's local training losses, sorted, from the executors' logs (sorted: a client
    trained in two rounds may appear in either executor's log first)."""
    found: dict[int, list[float]] = {}
    for log in sorted(log_dir.glob("executor*.log")):
        for line in log.read_text().splitlines():
            if "Training of (CLIENT:" in line and "completes" in line:
                record = line.split("completes, ", 1)[1]
                client = int(record.split("'client_id': ", 1)[1].split(",", 1)[0])
                loss = float(record.split("'moving_loss': ", 1)[1].split(",", 1)[0])
                found.setdefault(client, []).append(loss)
    return {client: sorted(losses) for client, losses in found.items()}


@pytest.mark.slow
@needs_fedscale
def test_a_clients_training_does_not_depend_on_the_executor_it_lands_on(
    tmp_path: Path, digits: Path
) -> None:
    """Same seed, one executor or two: every client trains exactly the same in every round.
    Without Reprise's seeding, FedScale's executors shuffle each client's samples from a stream
    shaped by the clients they trained before, and the runs differ from the first round on; without
    the ordered aggregation, the second round starts from models summed in arrival order."""
    from reprise.testbed.systems.fedscale.run import run_fedscale

    losses: dict[int, dict[int, list[float]]] = {}
    for executors in (1, 2):
        out = tmp_path / f"e{executors}"
        run_fedscale(_tiny(rounds=3, executors=executors), digits, out)  # rounds 1 and 2 train
        losses[executors] = _client_losses(out / "logs")
    assert sum(len(trained) for trained in losses[1].values()) == 8, losses
    assert losses[2] == losses[1]


@pytest.mark.slow
@needs_fedscale
def test_killed_executor_fails_the_run_by_name_and_nothing_is_left(
    tmp_path: Path, digits: Path
) -> None:
    from reprise.testbed.systems.fedscale.run import run_fedscale

    out = tmp_path / "out"
    seen: list[dict[str, Any]] = []

    def killer() -> None:
        log = out / "work" / "fedscale"
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            logs = list(log.glob("logs/*/*/aggregator/log"))
            if logs and "round: 2," in logs[0].read_text():
                procs = json.loads((out / "work" / "processes.json").read_text())
                seen.extend(procs)
                victim = next(p for p in procs if p["name"].startswith("executor 2"))
                os.killpg(victim["pgid"], signal.SIGKILL)
                return
            time.sleep(0.3)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    with pytest.raises(TestbedError, match=r"executor 2 \(local process\) ended with status -9"):
        run_fedscale(_tiny(rounds=8), digits, out)
    thread.join(5)
    assert seen, "the executor was never killed"
    assert _alive_groups(seen) == []
    assert not (out / "summary.json").exists()


@pytest.mark.slow
@needs_fedscale
def test_port_in_use_fails_before_anything_starts(tmp_path: Path, digits: Path) -> None:
    from reprise.testbed.systems.fedscale.run import run_fedscale

    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(TestbedError, match=rf"port {port} .*already in use"):
            run_fedscale(_tiny(port=port), digits, tmp_path / "out")
    assert not (tmp_path / "out" / "work" / "aggregator.log").exists()


@needs_fedscale
def test_missing_data_path_fails_before_anything_starts(tmp_path: Path) -> None:
    from reprise.testbed.systems.fedscale.run import run_fedscale

    with pytest.raises(DataError, match="does not exist"):
        run_fedscale(_tiny(), tmp_path / "missing", tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
@needs_fedscale
def test_snakemake_fedscale_with_local_processes(tmp_path: Path) -> None:
    import yaml
    from infra.workflow import copy_workflow, run_snakemake

    workdir = copy_workflow(tmp_path / "wf")
    config_path = workdir / "config" / "config.yaml"
    config = yaml.safe_load(config_path.read_text())
    config["testbed"]["fedscale"] = {
        "deployments": ["process"],
        "rounds": [4],
        "participants": [4],
        "local_steps": 5,
        "port": _free_port(),
        "data": {"clients": 12},
    }
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    result = run_snakemake(workdir, "fedscale", "-c2", timeout=1200)
    assert result.returncode == 0, result.stderr[-3000:]
    table = pd.read_csv(workdir / "results" / "tables" / "fedscale.csv")
    assert set(table["deployment"]) == {"process"}
    assert list(table["round"]) == [1, 2, 3]
    runs = pd.read_csv(workdir / "results" / "tables" / "fedscale_runs.csv")
    assert runs.loc[0, "max_accuracy_gap"] == 0 and runs.loc[0, "same_curve"]
    for name in ("fedscale.pdf", "fedscale.png"):
        assert (workdir / "results" / "figures" / name).stat().st_size > 0
    data = json.loads((workdir / "results" / "fedscale" / "data.json").read_text())
    assert data["clients_found"] == 12
    objects = (workdir / "results" / "testbeds" / "fedscale" / "kubernetes.yaml").read_text()
    assert objects.count("kind: Job") == 3
    again = run_snakemake(workdir, "fedscale", "-c2", "-n")
    assert "Nothing to be done" in again.stdout + again.stderr


def test_recovery_stops_only_groups_still_running_our_init_script(tmp_path: Path) -> None:
    from reprise.testbed.systems.fedscale.local import stop_recorded

    fake = tmp_path / "fedscale_init.py"
    fake.write_text("import time\ntime.sleep(600)\n")
    ours = subprocess.Popen([sys.executable, str(fake)], start_new_session=True)
    other = subprocess.Popen(["sleep", "600"], start_new_session=True)
    try:
        state = tmp_path / "processes.json"
        state.write_text(
            json.dumps(
                [
                    {"name": "executor 1 (local process)", "pgid": ours.pid},
                    {"name": "recycled pid", "pgid": other.pid},
                ]
            )
        )
        assert stop_recorded(state) == ["executor 1 (local process)"]
        assert ours.wait(10) != 0
        assert other.poll() is None  # a recorded id now used by something else is left alone
        assert not state.exists()
    finally:
        for proc in (ours, other):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


@pytest.mark.slow
@needs_fedscale
def test_sigterm_mid_run_stops_every_role(tmp_path: Path, digits: Path) -> None:
    out = tmp_path / "out"
    code = (
        "import sys; from pathlib import Path\n"
        "from reprise.testbed.systems.fedscale.job import FedScaleSettings\n"
        "from reprise.testbed.systems.fedscale.run import run_fedscale\n"
        f"run_fedscale(FedScaleSettings(rounds=20, participants=4, port={_free_port()}), "
        f"Path({str(digits)!r}), Path({str(out)!r}))\n"
    )
    driver = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True)
    state = out / "work" / "processes.json"
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and len(seen) < 3:
        if state.is_file():
            seen = json.loads(state.read_text())
        time.sleep(0.5)
    assert len(seen) == 3, "the executors never started"
    driver.send_signal(signal.SIGTERM)
    _, err = driver.communicate(timeout=120)
    assert driver.returncode != 0
    assert "received SIGTERM" in err
    assert _alive_groups(seen) == []
    assert not state.exists()
