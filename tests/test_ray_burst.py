"""Ray burst study: config checks, the data-aware scheduler's choices, the model, generated data,
the table and figure; one sweep point end to end on Docker nodes (slow)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from infra.docker_daemon import daemon_answers
from infra.netns_nodes import NetnsCluster, NetnsNode
from infra.workflow import copy_workflow, run_snakemake

from reprise.errors import ConfigError, DataError, ProvisionError, TestbedError
from reprise.testbed.inventory import parse_inventory
from reprise.testbed.systems.ray_burst.run import Point, check_roles, point_of, sweep_order
from reprise.testbed.systems.ray_burst.scheduler import DataAwarePlanner, NodeModel
from reprise.testbed.systems.ray_burst.settings import parse_settings, parse_topology

REPO = Path(__file__).resolve().parents[1]


def block(**over: object) -> dict[str, object]:
    base: dict[str, object] = {
        "scale": "tiny",
        "scales": {
            "tiny": {
                "data": {"ps_dirs": 2, "images_per_dir": 2, "classes": 2, "resolution": 64,
                         "large_images": 1, "large_side": 256, "transform_passes": 1},
                "topologies": [
                    {"name": "bw30", "nominal_mbit": 30,
                     "links": [{"between": ["login", "cloud"], "rate_mbit": 31}]}
                ],
            }
        },
    }  # fmt: skip
    base.update(over)
    return base


def test_config_block_of_the_repository_parses() -> None:
    import yaml

    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    settings = parse_settings(config["testbed"]["ray_burst"])
    assert len(settings.topologies) >= 3
    assert settings.topologies[0].cloud_rate_mbit == 31


def test_topology_with_unknown_role_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"links\[0\]\.between.*'gpu-farm'.*login, hpc, cloud"):
        parse_topology({"links": [{"between": ["login", "gpu-farm"], "rate_mbit": 10}]}, "t")


@pytest.mark.parametrize("rate", [0, -5, "fast"])
def test_topology_with_non_positive_bandwidth_is_refused(rate: object) -> None:
    with pytest.raises(ConfigError, match=r"t\.links\[0\]\.rate_mbit: must be a positive"):
        parse_topology({"links": [{"between": ["login", "cloud"], "rate_mbit": rate}]}, "t")


def test_unknown_scale_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"no scale 'huge'.*tiny"):
        parse_settings(block(scale="huge"))


def test_inventory_groups_must_be_the_three_roles(tmp_path: Path) -> None:
    doc = {
        "provider": "docker",
        "docker": {"groups": [{"group": "login", "count": 1}, {"group": "gpu", "count": 1}]},
    }
    inventory = parse_inventory(doc, tmp_path / "bad.yaml")
    with pytest.raises(ProvisionError, match=r"bad\.yaml.*unknown group\(s\) gpu.*missing hpc"):
        check_roles(inventory)


def test_sweep_runs_repetition_by_repetition_with_both_schedulers_back_to_back() -> None:
    points = [
        Point("bw30", w, d, k, r)
        for r in (1, 0)
        for k in ("data_aware", "default")
        for d in ("s3", "hpc")
        for w in ("transform", "parameter_server")
    ]
    order = sweep_order(points)
    assert [p.repetition for p in order] == [0] * 8 + [1] * 8
    assert [(p.workload, p.data_case, p.scheduler) for p in order[:4]] == [
        ("parameter_server", "hpc", "default"),
        ("parameter_server", "hpc", "data_aware"),
        ("parameter_server", "s3", "default"),
        ("parameter_server", "s3", "data_aware"),
    ]


def test_point_is_read_from_its_record_folder(tmp_path: Path) -> None:
    folder = tmp_path / "laptop/bw30/transform/s3/data_aware/rep2"
    assert point_of(folder, "bw30") == Point("bw30", "transform", "s3", "data_aware", 2)
    with pytest.raises(TestbedError, match=r"not a point's folder"):
        point_of(tmp_path / "a/b/c/d", "bw30")


def _planner(depth: int = 2) -> DataAwarePlanner:
    return DataAwarePlanner(
        [NodeModel("hpc", "hpc", False, 1e6), NodeModel("cloud", "cloud", True, 1e6)], depth
    )


def test_data_aware_prefers_the_node_holding_the_data_when_the_link_is_slow() -> None:
    planner = _planner()
    planner.nodes["cloud"].link_bytes_per_s = 1e3  # 1 kB/s: copying 1 MB takes ages
    assert planner.choose("a", 1_000_000, 0.0) == "hpc"
    assert planner.choose("b", 1_000_000, 0.0) == "hpc"
    # hpc is full (depth 2) and still the best: wait instead of bursting over the slow link
    assert planner.choose("c", 1_000_000, 0.0) is None


def test_data_aware_bursts_and_learns_speeds_online() -> None:
    planner = _planner(depth=1)
    planner.nodes["cloud"].link_bytes_per_s = 1e9
    assert planner.choose("a", 1000, 0.0) == "hpc"  # no copy needed: ahead by the copy time
    assert planner.choose("b", 1000, 0.0) == "cloud"  # hpc is full at depth 1: burst
    planner.finished("hpc", "a", 1000, 10.0, 10.0)  # hpc: 10 s per task
    planner.finished("cloud", "b", 1000, 1.0, 1.0)  # cloud: 1 s per task
    assert planner.nodes["cloud"].seconds_per_byte(0) == pytest.approx(1e-3)
    assert planner.choose("c", 1000, 11.0) == "cloud"


def test_mobilenet_v3_small_has_the_papers_parameter_count() -> None:
    from reprise.testbed.systems.ray_burst.model import MobileNetV3Small

    model = MobileNetV3Small(1000)
    assert sum(p.numel() for p in model.parameters()) == 2_542_856


def test_generated_inputs_are_imagefolders_and_large_images(tmp_path: Path) -> None:
    from PIL import Image

    from reprise.testbed.systems.ray_burst.data import generate

    settings = parse_settings(block())
    manifest = generate(tmp_path, settings.size, seed=3)
    ps = [i for i in manifest["inputs"] if i["workload"] == "parameter_server"]
    assert len(ps) == 2 and all(i["files"] == 2 for i in ps)
    classes = sorted(p.name for p in (tmp_path / ps[0]["input"]).iterdir())
    assert classes == ["class00", "class01"]
    with Image.open(tmp_path / "large/image000/image.png") as img:
        assert img.size == (256, 256)
    again = generate(tmp_path / "again", settings.size, seed=3)
    assert again["sha256"] == manifest["sha256"]  # the seed fixes every byte


def _record(root: Path, scheduler: str, rep: int, total: float, bw: int) -> Path:
    d = root / f"{scheduler}-{rep}-{bw}"
    d.mkdir(parents=True)
    summary = {
        "workload": "parameter_server", "data_case": "hpc", "scheduler": scheduler,
        "nominal_mbit": bw, "configured_mbit": bw + 1,
        "links": [{"between": ["login", "cloud"], "measured_mbit": bw * 0.97}],
        "metrics": {"total_s": total, "inputs_to_cloud": 2},
    }  # fmt: skip
    (d / "summary.json").write_text(json.dumps(summary))
    return d


def test_table_gives_median_spread_and_speedup(tmp_path: Path) -> None:
    from reprise.analysis.ray_burst import burst_table
    from reprise.plots.ray_burst import plot_burst

    runs = [_record(tmp_path, "default", r, t, 30) for r, t in enumerate([10, 12, 30])]
    runs += [_record(tmp_path, "data_aware", r, t, 30) for r, t in enumerate([8, 9, 10])]
    table = burst_table(runs)
    default = table[table["scheduler"] == "default"].iloc[0]
    aware = table[table["scheduler"] == "data_aware"].iloc[0]
    assert default["median_s"] == 12 and default["max_s"] == 30 and default["repetitions"] == 3
    assert aware["speedup_vs_default"] == pytest.approx(12 / 9, abs=1e-3)
    outputs = [tmp_path / "fig.pdf", tmp_path / "fig.png"]
    plot_burst(table, outputs)
    assert all(p.stat().st_size > 1000 for p in outputs)


def test_claim_checks_the_gain_as_bandwidth_shrinks(tmp_path: Path) -> None:
    from reprise.analysis.ray_burst import burst_claim, burst_table

    runs = []
    # 30 Mbit/s: data-aware 20 % faster (beyond the spread); 200 Mbit/s: even
    for bw, default, aware in ((30, [10, 10, 11], [8, 8, 8.5]), (200, [6, 6, 6], [6, 6, 6])):
        runs += [_record(tmp_path / "a", "default", r, t, bw) for r, t in enumerate(default)]
        runs += [_record(tmp_path / "a", "data_aware", r, t, bw) for r, t in enumerate(aware)]
    table = burst_table(runs)
    aware_30 = table[(table["scheduler"] == "data_aware") & (table["nominal_mbit"] == 30)]
    assert aware_30["gain_pct"].iloc[0] == pytest.approx(20.0)
    claim = burst_claim(table)
    assert claim["holds"] and claim["measured_max_gain_pct"] == pytest.approx(20.0)
    (panel,) = claim["panels"]
    assert panel["gain_pct_by_mbit"] == {"30": 20.0, "200": 0.0}
    assert panel["beyond_spread_at_lowest"]

    # the gain shrinks with the bandwidth instead: the claim fails and says where
    runs = []
    for bw, default, aware in ((30, [10, 10, 10], [11, 11, 11]), (200, [6, 6, 6], [5, 5, 5])):
        runs += [_record(tmp_path / "b", "default", r, t, bw) for r, t in enumerate(default)]
        runs += [_record(tmp_path / "b", "data_aware", r, t, bw) for r, t in enumerate(aware)]
    claim = burst_claim(burst_table(runs))
    assert not claim["holds"]
    assert "parameter_server, data hpc: gain -10.0 % at 30, +16.7 % at 200 Mbit/s" in claim["why"]


def test_table_names_an_unreadable_record(tmp_path: Path) -> None:
    from reprise.analysis.ray_burst import burst_table

    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "summary.json").write_text("{not json")
    with pytest.raises(DataError, match=r"r/summary\.json.*rerun"):
        burst_table([tmp_path / "r"])


def _ray_python() -> str | None:
    candidate = REPO / "results/envs/ray/venv/bin/python"
    return str(candidate) if candidate.exists() else None


def _docker_inventory(path: Path) -> Path:
    """The laptop inventory under the name test-burst, on its own subnet: a test can run beside
    a user's sweep on local-burst without taking its container names or addresses."""
    doc = yaml.safe_load((REPO / "config/clusters/local-burst.yaml").read_text())
    doc["docker"]["subnet"] = "10.231.19.0/24"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.fixture(scope="session")
def ray_python(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The study's venv (Ray, boto3, moto): the pipeline's if built, else made here (pip)."""
    found = _ray_python()
    if found is not None:
        return found
    from reprise.testbed.systems.ray_burst.env import make_venv

    base = tmp_path_factory.mktemp("rayvenv")
    record = make_venv(base / "venv", REPO / "requirements.lock", base / "pip.log")
    return str(record["python"])


def _ray_image() -> None:
    import docker

    try:
        docker.from_env().images.get("reprise-node-ray:latest")
    except docker.errors.ImageNotFound:
        pytest.skip("node image with Ray missing: snakemake results/testbeds/images/ray-node.json")


def _nothing_left(out: Path) -> None:
    import docker

    client = docker.from_env()
    left = client.containers.list(all=True, filters={"label": "reprise.cluster=test-burst"})
    assert not left, [c.name for c in left]
    assert not (out / "s3" / "s3-server.pgid").exists()
    run_state = json.loads((out / "run" / "testbed-run.json").read_text())
    assert run_state["state"] == "closed" and not run_state["shaping"]


@pytest.mark.slow
@pytest.mark.docker
@pytest.mark.skipif(not daemon_answers(), reason="no Docker daemon answers")
def test_one_point_on_docker_nodes_leaves_nothing_behind(tmp_path: Path, ray_python: str) -> None:
    from reprise.testbed.systems.ray_burst.data import generate
    from reprise.testbed.systems.ray_burst.run import run_point

    _ray_image()
    settings = parse_settings(block())
    generate(tmp_path / "data", settings.size, seed=0)
    summary = run_point(
        _docker_inventory(tmp_path / "test-burst.yaml"), tmp_path / "state", tmp_path / "out",
        settings, Point("bw30", "parameter_server", "hpc", "data_aware", 0),
        tmp_path / "data", controller_python=ray_python,
    )  # fmt: skip
    assert summary["metrics"]["tasks"] == 2
    measured = summary["links"][0]["measured_mbit"]
    assert abs(measured - 31) / 31 < 0.1, f"shaped to 31 Mbit/s, measured {measured}"
    jobs = pd.read_csv(tmp_path / "out" / "jobs.csv")
    assert set(jobs["role"]) <= {"hpc", "cloud"}
    _nothing_left(tmp_path / "out")
    if os.environ.get("REPRISE_KEEP"):
        shutil.copytree(tmp_path / "out", os.environ["REPRISE_KEEP"])


@pytest.mark.slow
@pytest.mark.docker
@pytest.mark.skipif(not daemon_answers(), reason="no Docker daemon answers")
def test_sweep_shares_one_cluster_but_each_point_starts_from_empty_caches(
    tmp_path: Path, ray_python: str
) -> None:
    """Three S3 points on one set of nodes and one Ray cluster: every point downloads every
    input again (what the earlier point left in the caches is removed first), one record each."""
    from reprise.testbed.systems.ray_burst.data import generate
    from reprise.testbed.systems.ray_burst.run import run_sweep

    _ray_image()
    tiny = block()
    tiny["scales"]["tiny"]["data"]["large_images"] = 2  # type: ignore[index]
    settings = parse_settings(tiny)
    manifest = generate(tmp_path / "data", settings.size, seed=0)
    total = sum(i["bytes"] for i in manifest["inputs"] if i["workload"] == "transform")
    runs = (("default", 1), ("data_aware", 0), ("default", 0))
    points = [Point("bw30", "transform", "s3", k, r) for k, r in runs]
    outdirs = {p: tmp_path / "points" / f"{p.scheduler}-{p.repetition}" for p in points}
    summaries = run_sweep(
        _docker_inventory(tmp_path / "test-burst.yaml"), tmp_path / "state", tmp_path / "out",
        settings, outdirs, tmp_path / "data", controller_python=ray_python,
    )  # fmt: skip
    assert [s["sweep"]["position"] for s in summaries] == [0, 1, 2]
    assert [(s["scheduler"], s["repetition"]) for s in summaries] == [
        ("default", 0), ("data_aware", 0), ("default", 1)
    ]  # fmt: skip
    assert len({s["run_id"] for s in summaries}) == 1  # one set of nodes, one Ray cluster
    for summary in summaries:
        assert (outdirs[Point("bw30", "transform", "s3", summary["scheduler"],
                              summary["repetition"])] / "summary.json").is_file()  # fmt: skip
        jobs = pd.read_csv(tmp_path / "points" / (
            f"{summary['scheduler']}-{summary['repetition']}") / "jobs.csv")  # fmt: skip
        # nothing was found cached: each input crossed to its node again in this point
        assert int(jobs["transfer_bytes"].sum()) == total, summary["scheduler"]
    # the later points found the earlier ones' downloads and outputs, and removed them
    assert summaries[0]["cache_files_removed"] == {"cloud": 0, "hpc": 0}
    assert all(sum(s["cache_files_removed"].values()) > 0 for s in summaries[1:])
    (link,) = summaries[0]["links"]
    for key in ("measured_mbit", "measured_after_mbit"):
        assert abs(link[key] - 31) / 31 < 0.1, f"shaped to 31 Mbit/s, {key} {link[key]}"
    _nothing_left(tmp_path / "out")


# --- through plain SSH hosts (sshd in network namespaces: the real-machine code path) -------


def _ssh_inventory(
    cluster: NetnsCluster, tmp_path: Path, python: str, cloud: NetnsNode, login: str = "n1"
) -> Path:
    """login, hpc and cloud roles on netns hosts; every node runs Ray from the study's venv."""
    names = [login, "n2", cloud.name]
    known = cluster.known_hosts(tmp_path / "known_hosts", names)
    path = cluster.inventory(
        tmp_path / "burst-ssh.yaml",
        groups={login: "login", "n2": "hpc", cloud.name: "cloud"},
        ssh={"known_hosts": str(known)},
        python=python,
        workdir=str(tmp_path / "nodes"),
    )
    doc = yaml.safe_load(path.read_text())
    doc["nodes"] = [n for n in doc["nodes"] if n["name"] in names]
    path.write_text(yaml.safe_dump(doc))
    return path


def _left_in(nodes: list[NetnsNode]) -> list[str]:
    """Processes still inside the nodes' namespaces besides their sshd (Ray, iperf3, driver)."""
    left = []
    for node in nodes:
        for pid in node.pids():
            if pid == node.sshd_pid:
                continue
            try:
                args = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            left.append(f"{node.name}: {pid} {args[:120]}")
    return left


def _wait_empty(nodes: list[NetnsNode], timeout_s: float = 10) -> list[str]:
    end = time.monotonic() + timeout_s
    while (left := _left_in(nodes)) and time.monotonic() < end:
        time.sleep(0.5)
    return left


@pytest.fixture
def burst_data(tmp_path: Path) -> Path:
    from reprise.testbed.systems.ray_burst.data import generate

    generate(tmp_path / "data", parse_settings(block()).size, seed=0)
    return tmp_path / "data"


def _ssh_point(
    cluster: NetnsCluster,
    tmp_path: Path,
    python: str,
    data: Path,
    what: tuple[str, str],
    cloud: NetnsNode,
    settings: object = None,
    login: str = "n1",
) -> dict[str, Any]:
    """Run point bw30 x `what` (workload, data case) under Ray's default on netns hosts."""
    from reprise.testbed.systems.ray_burst.run import Point, run_point
    from reprise.testbed.systems.ray_burst.settings import BurstSettings

    inventory = _ssh_inventory(cluster, tmp_path, python, cloud, login=login)
    chosen = settings if isinstance(settings, BurstSettings) else parse_settings(block())
    point = Point("bw30", what[0], what[1], "default", 0)
    out = tmp_path / "out"
    return run_point(inventory, tmp_path / "state", out, chosen, point, data, python)


@pytest.mark.slow
def test_one_point_through_ssh_hosts_leaves_no_ray_process(
    netns_cluster: NetnsCluster,
    throwaway_node: Callable[[str], NetnsNode],
    tmp_path: Path,
    ray_python: str,
    burst_data: Path,
) -> None:
    """The real-machine path: shaped and measured link, local S3, Ray on three SSH hosts."""
    cloud = throwaway_node("cloud")
    summary = _ssh_point(
        netns_cluster, tmp_path, ray_python, burst_data, ("transform", "s3"), cloud
    )
    assert summary["metrics"]["tasks"] == 1 and summary["provider"] == "ssh"
    measured = summary["links"][0]["measured_mbit"]
    assert abs(measured - 31) / 31 < 0.1, f"shaped to 31 Mbit/s, measured {measured}"
    assert summary["s3_endpoint"].startswith("http://")
    nodes = [netns_cluster.nodes[n] for n in ("n1", "n2", cloud.name)]
    assert _wait_empty(nodes) == []
    state = json.loads((tmp_path / "out/run/testbed-run.json").read_text())
    assert state["state"] == "closed" and not state["shaping"]
    for node in ("n1", cloud.name):  # no qdisc of ours is left on a shaped interface
        shown = subprocess.run(
            ["ip", "netns", "exec", netns_cluster.nodes[node].netns, "tc", "qdisc", "show"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        assert "htb" not in shown, shown


@pytest.mark.slow
def test_node_dying_mid_run_fails_naming_it_and_tears_down_the_rest(
    netns_cluster: NetnsCluster,
    throwaway_node: Callable[[str], NetnsNode],
    tmp_path: Path,
    ray_python: str,
) -> None:
    from reprise.testbed.systems.ray_burst.data import generate

    # enough work that the cloud node is still busy when it dies
    tiny = block()
    tiny["scales"]["tiny"]["data"].update(large_images=6, large_side=512, transform_passes=6)  # type: ignore[index]
    settings = parse_settings(tiny)
    generate(tmp_path / "data", settings.size, seed=0)
    cloud = throwaway_node("dying")
    cache = tmp_path / "nodes" / "ray-burst" / "cache" / cloud.name
    killed = threading.Event()

    def kill_once_busy() -> None:
        end = time.monotonic() + 300
        while time.monotonic() < end:
            if cache.is_dir() and any(cache.rglob("*.png")):  # its first input arrived
                netns_cluster.kill_node(cloud.name)
                killed.set()
                return
            time.sleep(0.2)

    threading.Thread(target=kill_once_busy, daemon=True).start()
    with pytest.raises(TestbedError, match=rf"{cloud.name}") as failure:
        _ssh_point(
            netns_cluster, tmp_path, ray_python, tmp_path / "data", ("transform", "hpc"), cloud,
            settings,
        )  # fmt: skip
    assert killed.is_set()
    assert "died" in str(failure.value) or "unreachable" in str(failure.value)
    # the login and hpc hosts are clean: their Ray processes were stopped
    assert _wait_empty([netns_cluster.nodes["n1"], netns_cluster.nodes["n2"]]) == []
    assert not (tmp_path / "out" / "summary.json").exists()


@pytest.mark.slow
def test_unreachable_s3_endpoint_is_named_before_ray_starts(
    netns_cluster: NetnsCluster,
    throwaway_node: Callable[[str], NetnsNode],
    tmp_path: Path,
    ray_python: str,
    burst_data: Path,
) -> None:
    cloud = throwaway_node("cloud")
    settings = parse_settings(block(s3={"endpoint": "http://127.0.0.1:9", "bucket": "b"}))
    with pytest.raises(
        TestbedError,
        match=r"S3 endpoint http://127\.0\.0\.1:9 is unreachable from node 'n2'.*"
        r"testbed\.ray_burst\.s3\.endpoint",
    ):
        _ssh_point(
            netns_cluster, tmp_path, ray_python, burst_data, ("transform", "s3"), cloud, settings
        )
    assert _wait_empty([netns_cluster.nodes[n] for n in ("n1", "n2", cloud.name)]) == []


@pytest.fixture
def login_without_net_admin(throwaway_node: Callable[[str], NetnsNode]) -> Iterator[NetnsNode]:
    """A host whose sshd (and so every command run through it) lacks CAP_NET_ADMIN, as an
    unprivileged user or a container without cap_add NET_ADMIN would."""
    node = throwaway_node("nocap")
    os.kill(node.sshd_pid, signal.SIGTERM)
    pid_file = node.folder / "sshd.pid"
    for _ in range(100):
        if not Path(f"/proc/{node.sshd_pid}").exists():
            break
        time.sleep(0.05)
    pid_file.unlink(missing_ok=True)
    sshd = shutil.which("sshd") or "/usr/sbin/sshd"
    subprocess.run(
        ["ip", "netns", "exec", node.netns, "capsh", "--drop=cap_net_admin", "--", "-c",
         f"exec {sshd} -f {node.folder / 'sshd_config'} -E {node.folder / 'sshd.log'}"],
        check=True,
    )  # fmt: skip
    for _ in range(200):
        if pid_file.exists() and pid_file.read_text().strip():
            break
        time.sleep(0.05)
    node.sshd_pid = int(pid_file.read_text())
    yield node


@pytest.mark.slow
def test_shaping_not_permitted_names_the_missing_capability(
    netns_cluster: NetnsCluster,
    throwaway_node: Callable[[str], NetnsNode],
    login_without_net_admin: NetnsNode,
    tmp_path: Path,
    ray_python: str,
    burst_data: Path,
) -> None:
    cloud = throwaway_node("cloud")
    login = login_without_net_admin.name
    with pytest.raises(
        TestbedError,
        match=rf"node '{login}': tc failed.*not permitted.*NET_ADMIN.*"
        r"testbed\.ray_burst\.shaping: false",
    ):
        _ssh_point(
            netns_cluster, tmp_path, ray_python, burst_data, ("transform", "hpc"), cloud,
            login=login,
        )  # fmt: skip
    state = json.loads((tmp_path / "out/run/testbed-run.json").read_text())
    assert state["state"] == "closed" and not state["shaping"]


# --- the whole pipeline on Docker nodes -----------------------------------------------------


@pytest.mark.slow
@pytest.mark.docker
@pytest.mark.skipif(not daemon_answers(), reason="no Docker daemon answers")
def test_snakemake_ray_burst_on_docker_nodes(tmp_path: Path) -> None:
    """`snakemake ray_burst` on a small config: table, claims and figure; nothing left behind."""
    import docker

    workdir = copy_workflow(tmp_path / "wf")
    # its own cluster name and subnet: a user's sweep on local-burst may run beside it
    _docker_inventory(workdir / "config/clusters/test-burst.yaml")
    small = block(
        cluster="test-burst", workloads=["transform"], repetitions=1,
        s3={"endpoint": None, "bucket": "reprise-burst"},
    )  # fmt: skip
    override = tmp_path / "burst.yaml"
    override.write_text(yaml.safe_dump({"testbed": {"ray_burst": small}}))
    result = run_snakemake(workdir, "ray_burst", "-c2", "--configfile", str(override), timeout=3000)
    assert result.returncode == 0, result.stderr[-4000:]
    table = pd.read_csv(workdir / "results/tables/ray_burst.csv")
    assert len(table) == 4  # 1 bandwidth x 1 workload x 2 data cases x 2 schedulers
    assert set(table["scheduler"]) == {"default", "data_aware"}
    assert (table["median_s"] > 0).all() and (abs(table["measured_mbit"] - 31) < 3.1).all()
    claim = json.loads((workdir / "results/claims/ray_burst.json").read_text())
    assert isinstance(claim["holds"], bool) and len(claim["panels"]) == 2
    for fig in ("pdf", "png"):
        assert (workdir / f"results/figures/ray_burst.{fig}").stat().st_size > 1000
    client = docker.from_env()
    label = "reprise.cluster=test-burst"
    assert client.containers.list(all=True, filters={"label": label}) == []
    assert client.networks.list(filters={"label": label}) == []
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    servers = [line for line in ps.splitlines() if "ray_burst.s3 serve" in line]
    assert not [line for line in servers if str(workdir) in line]  # the local S3 server
    again = run_snakemake(workdir, "ray_burst", "-c2", "--configfile", str(override), "-n")
    assert "Nothing to be done" in again.stdout + again.stderr
