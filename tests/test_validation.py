"""Input checks of issue 12: each bad input fails with a message naming its file/row/key."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from reprise.config import check_config, check_schema
from reprise.data.clusters import ClusterSpec, cluster_from_name
from reprise.data.fetch import UpstreamFile, load_catalog, verify_installed, verify_used
from reprise.data.generate import GeneratorParams, write_generated_trace
from reprise.data.normalise import normalise_trace
from reprise.data.profiles import ThroughputProfiles
from reprise.data.traces import load_trace
from reprise.data.validate import check_trace
from reprise.errors import ConfigError, DataError, TraceError
from reprise.lifetime import die_with_parent
from reprise.records.reader import read_summary
from reprise.runlock import hold_run_lock

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "config/schema/config.schema.yaml"
HEADER = "job_id,submit_time,iteration,model_name,ddl,batch_size,num_gpu,duration"
GOOD = "0,0,1000,deepspeech2,90000,320,4,600"
"""A job the T4 profiles know (deepspeech2, global batch 320, 4 GPUs)."""
N16G4 = ClusterSpec("n16g4", 1, 16, 4)
ON_FIG8A = [("experiments.figure8a.runs[0].cluster", N16G4)]


def write(tmp_path: Path, text: str | bytes, name: str = "t.csv") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def failure(path: Path, profiles: ThroughputProfiles | None = None) -> str:
    with pytest.raises(TraceError) as err:
        jobs = load_trace(path, profiles)
        if profiles is not None:
            check_trace(path, jobs, profiles, ON_FIG8A)
    return str(err.value)


# -- 1. the trace against the profiles and clusters it meets ------------------------------------


def test_gpu_count_without_a_profile_column(
    tmp_path: Path, t4_profiles: ThroughputProfiles
) -> None:
    path = write(tmp_path, f"{HEADER}\n{GOOD}\n1,0,1000,deepspeech2,90000,320,3,600\n")
    message = failure(path, t4_profiles)
    assert f"{path}: row 3, column 'num_gpu': 3 GPUs" in message
    assert "deepspeech2.csv (batch 320) has columns for 1, 2, 4, 8, 16, 32, 64 GPUs only" in message


def test_gpu_count_without_a_measurement(tmp_path: Path, t4_profiles: ThroughputProfiles) -> None:
    # upstream's yolov3 profile has `nan` at 32 and 64 GPUs
    path = write(tmp_path, f"{HEADER}\n0,0,1000,yolov3,90000,64,32,600\n")
    message = failure(path, t4_profiles)
    assert "row 2, column 'num_gpu': 32 GPUs" in message and "no measurement (nan)" in message


def test_job_larger_than_the_cluster(tmp_path: Path, t4_profiles: ThroughputProfiles) -> None:
    path = write(tmp_path, f"{HEADER}\n{GOOD}\n7,0,1000,deepspeech2,90000,640,64,600\n")
    jobs = load_trace(path, t4_profiles)
    check_trace(path, jobs, t4_profiles, ON_FIG8A)  # 64 GPUs fill n16g4 exactly
    small = [("experiments.x.runs[1].cluster", cluster_from_name("n4g8"))]
    with pytest.raises(TraceError) as err:
        check_trace(path, jobs, t4_profiles, small)
    message = str(err.value)
    assert f"{path}: row 3, column 'num_gpu': job 7 asks for 64 GPUs, more than the" in message
    assert "cluster n4g8 (4 nodes x 8 GPUs = 32, experiments.x.runs[1].cluster)" in message


@pytest.mark.parametrize(
    ("cell", "fragment"),
    [
        ("0", "row 3, column 'iteration': must be positive, got 0"),
        ("-4", "row 3, column 'iteration': must be positive, got -4"),
        (
            "1" + "0" * 30,
            "row 3, column 'iteration': 1000000000000000000000000000000 is beyond 1e+12",
        ),
    ],
)
def test_iterations_positive_and_sane(tmp_path: Path, cell: str, fragment: str) -> None:
    path = write(tmp_path, f"{HEADER}\n{GOOD}\n1,0,{cell},deepspeech2,90000,320,4,600\n")
    message = failure(path)
    assert str(path) in message and fragment in message


def test_duplicate_job_ids_name_both_rows(tmp_path: Path) -> None:
    path = write(tmp_path, f"{HEADER}\n{GOOD}\n1,0,9,bert,9,384,1,5\n0,5,9,bert,99,384,1,5\n")
    assert "row 4, column 'job_id': '0' is already the id of row 2; job ids must be unique" in (
        failure(path)
    )


def test_latin1_byte_names_file_and_line(tmp_path: Path) -> None:
    data = f"{HEADER}\n{GOOD}\n".encode() + "1,0,9,r\xe9snet,9,384,1,5\n".encode("latin-1")
    path = write(tmp_path, data)
    message = failure(path)
    assert f"{path}: line 3, byte 8: 0xe9 is not UTF-8" in message and "iconv" in message


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    plain = load_trace(write(tmp_path, f"{HEADER}\n{GOOD}\n", "a.csv"))
    bom = load_trace(write(tmp_path, f"\ufeff{HEADER}\n{GOOD}\n".encode(), "b.csv"))
    assert bom == plain and bom[0].job_id == "0"


def test_txt_suffix_does_not_decide_the_delimiter(tmp_path: Path) -> None:
    comma = load_trace(write(tmp_path, f"{HEADER}\n{GOOD}\n", "comma.txt"))
    spaces = HEADER.replace(",", " ") + "\n" + GOOD.replace(",", "  ") + "\n"
    assert load_trace(write(tmp_path, spaces, "spaces.txt")) == comma
    tabs = HEADER.replace(",", "\t") + "\n" + GOOD.replace(",", "\t") + "\n"
    assert load_trace(write(tmp_path, tabs, "tabs.csv")) == comma


def test_row_with_the_wrong_field_count(tmp_path: Path) -> None:
    path = write(tmp_path, f"{HEADER}\n{GOOD}\n1;0;9;bert;9;384;1;5\n")
    assert f"{path}: row 3 has 1 fields but the header has 8 (fields separated by ','" in (
        failure(path)
    )


def test_normalised_trace_is_not_written_when_a_job_does_not_fit(
    tmp_path: Path, t4_profiles: ThroughputProfiles
) -> None:
    source = write(tmp_path, f"{HEADER}\n{GOOD}\n1,0,9,deepspeech2,90000,320,8,600\n")
    dest = tmp_path / "out" / "t.csv"
    with pytest.raises(TraceError, match="job 1 asks for 8 GPUs, more than the cluster n1g4"):
        normalise_trace(source, dest, t4_profiles, [("runs[0]", cluster_from_name("n1g4"))])
    assert not (tmp_path / "out").exists()


def test_every_upstream_trace_passes(
    mirror: Path, t4_profiles: ThroughputProfiles, a100_profiles: ThroughputProfiles
) -> None:
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    root = mirror / "ElasticFlow-artifact/ElasticFlow"
    for name in ("elasticVpollux_e", "philly"):
        entry = config["traces"][name]
        profiles = t4_profiles if entry["gpu_type"] == "T4" else a100_profiles
        clusters = [
            (exp, cluster_from_name(run["cluster"]))
            for exp, e in config["experiments"].items()
            for run in e["runs"]
            if run["trace"] == name
        ]
        path = mirror / entry["upstream"]
        check_trace(path, load_trace(path, profiles), profiles, clusters)
    assert root.is_dir()


# -- 2. upstream copies verified at use -----------------------------------------------------------


def test_edited_copy_is_named_with_both_hashes(tmp_path: Path) -> None:
    good = b"job_id,submit_time\n0,1\n"
    entry = UpstreamFile("art/t.csv", "http://x", hashlib.sha256(good).hexdigest(), len(good))
    copy_path = tmp_path / "resources/upstream/art/t.csv"
    copy_path.parent.mkdir(parents=True)
    copy_path.write_bytes(good)
    catalog = {entry.path: entry}
    assert verify_used([copy_path], catalog) == {"art/t.csv": entry.sha256}
    assert verify_installed(catalog, tmp_path / "resources/upstream") == 1
    copy_path.write_bytes(good.replace(b"1", b"2"))
    edited = hashlib.sha256(copy_path.read_bytes()).hexdigest()
    for check in (
        lambda: verify_used([copy_path], catalog),
        lambda: verify_installed(catalog, tmp_path / "resources/upstream"),
    ):
        with pytest.raises(DataError) as err:
            check()
        message = str(err.value)
        assert str(copy_path) in message and entry.sha256 in message and edited in message
        assert f"rm {copy_path}" in message


# -- 3. and 4. the config ------------------------------------------------------------------------


@pytest.fixture()
def config(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.chdir(REPO)
    doc: dict[str, Any] = yaml.safe_load((REPO / "config/config.yaml").read_text())
    return doc


def set_key(config: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    bad = copy.deepcopy(config)
    node = bad
    parts = key.split(".")
    for part in parts[:-1]:
        node = node[part]
    node[parts[-1]] = value
    return bad


@pytest.mark.parametrize(
    ("key", "value", "fragment"),
    [
        ("experiments.figure8a.policies", ["edf", "edf", "gandiva"], "has non-unique elements"),
        (
            "experiments.figure8a.runs",
            [{"trace": "elasticVpollux_e", "cluster": "n16g4"}] * 2,
            "has non-unique elements",
        ),
        ("experiments.figure8a.pending_policies", ["polux"], "'polux' is not one of"),
        ("experiments.figure8a.note_policies", ["chronus-gredy"], "'chronus-gredy' is not one of"),
        ("traces.fig9_1000job.generated.max_gpus", 0, "0 is not one of [1, 2, 4, 8, 16]"),
        ("traces.fig9_1000job.generated.max_gpus", 3, "3 is not one of [1, 2, 4, 8, 16]"),
        (
            "traces.fig9_1000job.generated.min_ddl",
            -1,
            "-1 is less than or equal to the minimum of 0",
        ),
    ],
)
def test_schema_names_the_key(config: dict[str, Any], key: str, value: Any, fragment: str) -> None:
    with pytest.raises(ConfigError) as err:
        check_schema(set_key(config, key, value), SCHEMA)
    message = str(err.value)
    assert message.startswith(f"config key {key}") and fragment in message


def test_max_ddl_below_min_ddl(config: dict[str, Any]) -> None:
    bad = set_key(config, "traces.fig9_1000job.generated.max_ddl", 0.2)
    with pytest.raises(
        ConfigError, match=r"traces\.fig9_1000job\.generated\.max_ddl: 0\.2 is below"
    ):
        check_config(bad, load_catalog(REPO / "config/upstream.yaml"))


def test_project_config_passes_the_schema(config: dict[str, Any]) -> None:
    check_schema(config, SCHEMA)


def test_invalid_generated_trace_leaves_no_file(
    tmp_path: Path, a100_profiles: ThroughputProfiles
) -> None:
    dest = tmp_path / "fig9.s0.csv"
    params = GeneratorParams(num_jobs=50, lam=900, min_ddl=0.5, max_ddl=1.5, max_gpus=16)
    small = [("experiments.figure9.runs[0].cluster", cluster_from_name("n1g8"))]
    with pytest.raises(ConfigError) as err:
        write_generated_trace(params, a100_profiles, dest, small, "traces.fig9.generated")
    message = str(err.value)
    assert message.startswith("config key traces.fig9.generated: these parameters")
    assert "asks for 16 GPUs, more than the cluster n1g8" in message
    assert not dest.exists() and list(tmp_path.iterdir()) == []
    assert write_generated_trace(params, a100_profiles, dest, ON_FIG8A, "k") == 50


# -- 5. other hazards ----------------------------------------------------------------------------


def test_truncated_summary_names_the_path(tmp_path: Path) -> None:
    run = tmp_path / "results/runs/sim/x/t/n1g1/edf"
    run.mkdir(parents=True)
    (run / "summary.json").write_text(json.dumps({"metrics": {"accepted": 1}})[:12])
    with pytest.raises(DataError) as err:
        read_summary(run)
    assert f"{run / 'summary.json'}: not a complete run summary" in str(err.value)
    assert f"snakemake -R {run / 'summary.json'}" in str(err.value)


def test_second_holder_of_the_run_lock_is_refused(tmp_path: Path) -> None:
    lock = tmp_path / ".snakemake/reprise.lock"
    code = (
        "import sys, time\nsys.path.insert(0, sys.argv[2])\n"
        "from pathlib import Path\nfrom reprise.runlock import hold_run_lock\n"
        "hold_run_lock(Path(sys.argv[1]))\nprint('held', flush=True)\ntime.sleep(60)\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(lock), str(REPO / "workflow")],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(ConfigError) as err:
            hold_run_lock(lock)
        assert "another Snakemake is running" in str(err.value)
        assert f"pid {holder.pid}" in str(err.value) and str(lock) in str(err.value)
    finally:
        holder.kill()
        holder.wait()
    hold_run_lock(lock)  # released with its holder, even after kill -9


def test_child_dies_with_its_parent(tmp_path: Path) -> None:
    marker = tmp_path / "written"
    child = (
        "import sys, time\nsys.path.insert(0, sys.argv[2])\n"
        "from reprise.lifetime import die_with_parent\n"
        "assert die_with_parent()\nprint('armed', flush=True)\ntime.sleep(3)\n"
        "open(sys.argv[1], 'w').write('late')\n"
    )
    parent = (
        "import subprocess, sys, time\n"
        "p = subprocess.Popen([sys.executable, '-c', sys.argv[1], sys.argv[2], sys.argv[3]])\n"
        "print(p.pid, flush=True)\ntime.sleep(60)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", parent, child, str(marker), str(REPO / "workflow")],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    child_pid = int(proc.stdout.readline())
    assert proc.stdout.readline().strip() == "armed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    time.sleep(5)
    assert not marker.exists()
    assert (
        not Path(f"/proc/{child_pid}").exists()
        or "zombie" in Path(f"/proc/{child_pid}/status").read_text().lower()
    )
    assert os.getpid() > 0 and die_with_parent is not None
