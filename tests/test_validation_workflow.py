"""Integration (issue 12): bad input stops the real workflow before any job runs, upstream
copies are verified at every start, and Snakemake-level hazards are wrapped."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from infra.workflow import (
    FIG8A_TRACE,
    SNAKEMAKE,
    TINY_TABLE,
    copy_workflow,
    run_snakemake,
    tiny_config,
)

HEADER = "job_id,submit_time,iteration,model_name,ddl,batch_size,num_gpu,duration"
GOOD = "0,0,1000,deepspeech2,90000,320,4,600"
EDF_RUN = "results/runs/sim/tiny/tiny/n4g8/edf"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_workflow(tmp_path_factory.mktemp("validation") / "reprise")


def env(mirror: Path, **extra: str) -> dict[str, str]:
    return {"REPRISE_MIRRORS": str(mirror), **extra}


def dry_run(workdir: Path, mirror: Path, config: str) -> str:
    """`snakemake -n` with an extra config file; returns its output, which must be a failure."""
    extra = workdir.parent / "extra.yaml"
    extra.write_text(config)
    result = run_snakemake(
        workdir, TINY_TABLE, "-n", "--configfile", str(extra), env=env(mirror), timeout=120
    )
    assert result.returncode != 0, result.stdout
    assert not (workdir / "results").exists()
    return result.stdout + result.stderr


def local_trace(directory: Path, body: str | bytes, name: str = "trace.csv") -> str:
    path = directory / name
    if isinstance(body, bytes):
        path.write_bytes(body)
    else:
        path.write_text(body)
    return (
        f"traces:\n  tiny:\n    file: {path}\n    gpu_type: T4\n"
        "experiments:\n  tiny:\n    runs:\n      - {trace: tiny, cluster: n16g4}\n"
        "    slot: 60\n    policies: [edf, gandiva]\n    paper: config/paper/figure8a.yaml\n"
    )


@pytest.mark.parametrize(
    ("rows", "fragments"),
    [
        (
            f"{GOOD}\n5,0,1000,deepspeech2,90000,320,3,600\n",
            ["row 3, column 'num_gpu': 3 GPUs", "has columns for 1, 2, 4, 8, 16, 32, 64 GPUs only"],
        ),
        (
            f"{GOOD}\n5,0,1000,deepspeech2,90000,640,64,600\n6,0,9,deepspeech2,9000,640,128,6\n",
            ["row 4, column 'num_gpu': 128 GPUs"],
        ),
        (f"{GOOD}\n5,0,0,deepspeech2,90000,320,4,600\n", ["row 3, column 'iteration': must be"]),
        (f"{GOOD}\n5,0,{10**30},deepspeech2,9,320,4,6\n", ["row 3, column 'iteration'", "1e+12"]),
        (f"{GOOD}\n0,0,9,deepspeech2,9,320,4,6\n", ["row 3, column 'job_id': '0' is already"]),
    ],
)
def test_bad_local_trace_fails_before_any_job(
    workdir: Path, mirror: Path, rows: str, fragments: list[str]
) -> None:
    config = local_trace(workdir.parent, f"{HEADER}\n{rows}")
    output = dry_run(workdir, mirror, config)
    assert str(workdir.parent / "trace.csv") in output
    for fragment in fragments:
        assert fragment in output, output


def test_job_larger_than_its_cluster_names_the_run(workdir: Path, mirror: Path) -> None:
    rows = f"{GOOD}\n5,0,1000,deepspeech2,90000,640,64,600\n"
    config = local_trace(workdir.parent, f"{HEADER}\n{rows}").replace("n16g4", "n4g8")
    output = dry_run(workdir, mirror, config)
    assert "row 3, column 'num_gpu': job 5 asks for 64 GPUs, more than the cluster n4g8" in output
    assert "experiments.tiny.runs[0].cluster" in output


def test_latin1_byte_fails_naming_file_and_line(workdir: Path, mirror: Path) -> None:
    body = f"{HEADER}\n{GOOD}\n".encode() + "1,0,9,deepsp\xe9ech2,9,320,4,6\n".encode("latin-1")
    output = dry_run(workdir, mirror, local_trace(workdir.parent, body))
    assert f"{workdir.parent / 'trace.csv'}: line 3, byte 13: 0xe9 is not UTF-8" in output


@pytest.mark.parametrize(
    ("key", "yaml_text", "fragment"),
    [
        (
            "experiments.tiny.policies",
            "experiments:\n  tiny:\n    runs: [{trace: elasticVpollux_e, cluster: n16g4}]\n"
            "    slot: 60\n    policies: [edf, edf, gandiva]\n"
            "    paper: config/paper/figure8a.yaml\n",
            "has non-unique elements",
        ),
        (
            "experiments.tiny.runs",
            "experiments:\n  tiny:\n    runs: [{trace: elasticVpollux_e, cluster: n16g4}, "
            "{trace: elasticVpollux_e, cluster: n16g4}]\n"
            "    slot: 60\n    policies: [edf]\n    paper: config/paper/figure8a.yaml\n",
            "has non-unique elements",
        ),
        (
            "experiments.tiny.pending_policies[0]",
            "experiments:\n  tiny:\n    runs: [{trace: elasticVpollux_e, cluster: n16g4}]\n"
            "    slot: 60\n    policies: [edf]\n    pending_policies: [polux]\n"
            "    paper: config/paper/figure8a.yaml\n",
            "'polux' is not one of",
        ),
        (
            "experiments.tiny.note_policies[0]",
            "experiments:\n  tiny:\n    runs: [{trace: elasticVpollux_e, cluster: n16g4}]\n"
            "    slot: 60\n    policies: [edf]\n    note_policies: [chronus-gredy]\n"
            "    paper: config/paper/figure8a.yaml\n",
            "'chronus-gredy' is not one of",
        ),
        (
            "traces.fig9_1000job.generated.max_gpus",
            "traces:\n  fig9_1000job:\n    generated: {num_jobs: 10, lam: 9, max_gpus: 3}\n"
            "    gpu_type: A100\n",
            "3 is not one of [1, 2, 4, 8, 16]",
        ),
        (
            "traces.fig9_1000job.generated.max_gpus",
            "traces:\n  fig9_1000job:\n    generated: {num_jobs: 10, lam: 9, max_gpus: 0}\n"
            "    gpu_type: A100\n",
            "0 is not one of [1, 2, 4, 8, 16]",
        ),
        (
            "traces.fig9_1000job.generated.min_ddl",
            "traces:\n  fig9_1000job:\n    generated: {num_jobs: 10, lam: 9, min_ddl: -1}\n"
            "    gpu_type: A100\n",
            "-1 is less than or equal to the minimum of 0",
        ),
    ],
)
def test_bad_config_fails_before_any_job_naming_the_key(
    workdir: Path, mirror: Path, key: str, yaml_text: str, fragment: str
) -> None:
    output = dry_run(workdir, mirror, yaml_text)
    assert f"config key {key}: " in output and fragment in output, output


def test_edited_upstream_copy_stops_the_next_run(
    tmp_path: Path, workdir: Path, mirror: Path
) -> None:
    copy = workdir / "resources/upstream" / FIG8A_TRACE
    copy.parent.mkdir(parents=True)
    data = (mirror / FIG8A_TRACE).read_bytes()
    pinned = hashlib.sha256(data).hexdigest()
    at = data.index(b"\n", 2000) - 1  # the last digit of some row
    edited_data = data[:at] + bytes([48 + (data[at] - 47) % 10]) + data[at + 1 :]
    copy.write_bytes(edited_data)
    edited = hashlib.sha256(edited_data).hexdigest()
    try:
        result = run_snakemake(
            workdir, "results/traces/elasticVpollux_e.csv", "-c1", env=env(mirror), timeout=120
        )
        output = result.stdout + result.stderr
        assert result.returncode != 0
        assert f"{copy.relative_to(workdir)}: the copy of {FIG8A_TRACE} was changed" in output
        assert pinned in output and edited in output
        assert not (workdir / "results/traces").exists()
    finally:
        copy.unlink()


def children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture()
def stalled_run(tmp_path: Path, mirror: Path) -> Iterator[tuple[Path, Path, subprocess.Popen[str]]]:
    """A tiny run whose EDF job stalls 20 s before simulating (test-only fault injection)."""
    root = copy_workflow(tmp_path / "reprise")
    config = tiny_config(tmp_path, mirror, ["edf"])
    full_env = {
        **os.environ,
        "REPRISE_PROGRESS": "0",
        "REPRISE_MIRRORS": str(mirror),
        "REPRISE_STALL_RUN": "edf",
        "REPRISE_STALL_SECONDS": "20",
    }
    proc = subprocess.Popen(
        [*SNAKEMAKE, TINY_TABLE, "-c1", "--configfile", str(config)],
        cwd=root,
        env=full_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    log = root / "results/logs/sim/tiny/tiny/n4g8/edf.log"
    deadline = time.monotonic() + 120
    while not (log.exists() and "stalling" in log.read_text()):
        assert proc.poll() is None and time.monotonic() < deadline, "the run never stalled"
        time.sleep(0.2)
    try:
        yield root, config, proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_second_run_is_refused_and_a_killed_run_leaves_no_orphan(
    stalled_run: tuple[Path, Path, subprocess.Popen[str]], mirror: Path
) -> None:
    root, _, proc = stalled_run
    stalled_at = time.monotonic()
    spec = "resources/upstream/ElasticFlow-artifact/ElasticFlow/scheduler/cluster_specs/n8g8.csv"
    second = run_snakemake(root, spec, "-c1", env=env(mirror), timeout=120)
    assert second.returncode != 0
    assert "another Snakemake is running in" in second.stdout + second.stderr
    assert f"pid {proc.pid}" in second.stdout + second.stderr
    assert not (root / spec).exists()
    dry = run_snakemake(root, spec, "-n", env=env(mirror), timeout=120)
    assert dry.returncode == 0, dry.stdout + dry.stderr
    simulation = [
        p for p in children(proc.pid) if "simulate" in Path(f"/proc/{p}/cmdline").read_text()
    ]
    assert len(simulation) == 1
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    time.sleep(max(0.0, stalled_at + 25 - time.monotonic()))  # past the end of the stall
    assert not alive(simulation[0])
    assert not (root / EDF_RUN / "summary.json").exists()


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory, mirror: Path) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("finished")
    root = copy_workflow(base / "reprise")
    config = tiny_config(base, mirror, ["edf", "gandiva"])
    result = run_snakemake(
        root, TINY_TABLE, "-c2", "--configfile", str(config), env=env(mirror), timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return root, config


def test_truncated_summary_is_named_and_the_table_kept(
    finished: tuple[Path, Path], mirror: Path
) -> None:
    root, config = finished
    table = (root / TINY_TABLE).read_bytes()
    summary = root / EDF_RUN / "summary.json"
    good = summary.read_bytes()
    summary.write_bytes(good[: len(good) // 2])
    result = run_snakemake(
        root, TINY_TABLE, "-c1", "--configfile", str(config), env=env(mirror), timeout=300
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"{EDF_RUN}/summary.json: not a complete run summary" in output
    assert f"snakemake -R {EDF_RUN}/summary.json" in output
    assert (root / TINY_TABLE).read_bytes() == table
    fixed = run_snakemake(
        root,
        TINY_TABLE,
        "-c1",
        "--configfile",
        str(config),
        "-R",
        f"{EDF_RUN}/summary.json",
        env=env(mirror),
        timeout=300,
    )
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert summary.read_bytes() == good and (root / TINY_TABLE).read_bytes() == table


def test_summary_records_the_upstream_hashes(finished: tuple[Path, Path], mirror: Path) -> None:
    root, _ = finished
    upstream = json.loads((root / EDF_RUN / "summary.json").read_text())["inputs"]["upstream"]
    spec = "ElasticFlow-artifact/ElasticFlow/scheduler/cluster_specs/n4g8.csv"
    assert upstream[spec] == hashlib.sha256((mirror / spec).read_bytes()).hexdigest()
    assert upstream["tiny_trace.csv"] and len(upstream) == 8  # trace, spec, six T4 profiles
