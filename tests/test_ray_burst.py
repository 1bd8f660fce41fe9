"""Ray burst study: config checks, the data-aware scheduler's choices, the model, generated data,
the table and figure; one sweep point end to end on Docker nodes (slow)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

from reprise.errors import ConfigError, DataError, ProvisionError
from reprise.testbed.inventory import parse_inventory
from reprise.testbed.systems.ray_burst.run import check_roles
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


def _docker_ok() -> bool:
    try:
        import docker  # type: ignore[import-untyped]

        docker.from_env(timeout=5).ping()
        return True
    except Exception:
        return False


def _ray_python() -> str | None:
    for candidate in (
        REPO / "results/envs/ray/venv/bin/python",
        Path("/tmp/rayvenv/venv/bin/python"),
    ):
        if candidate.exists():
            return str(candidate)
    return None


@pytest.mark.slow
@pytest.mark.docker
@pytest.mark.skipif(not _docker_ok(), reason="no Docker daemon answers")
@pytest.mark.parametrize("data_case", ["hpc", "s3"])
def test_one_point_on_docker_nodes_leaves_nothing_behind(tmp_path: Path, data_case: str) -> None:
    import docker

    from reprise.testbed.systems.ray_burst.data import generate
    from reprise.testbed.systems.ray_burst.run import Point, run_point

    client = docker.from_env()
    try:
        client.images.get("reprise-node-ray:latest")
    except docker.errors.ImageNotFound:
        pytest.skip("node image with Ray missing: snakemake results/testbeds/images/ray-node.json")
    python = _ray_python()
    if python is None:
        pytest.skip("the study's venv is missing: snakemake results/envs/ray/env.json")
    settings = parse_settings(block())
    generate(tmp_path / "data", settings.size, seed=0)
    summary = run_point(
        REPO / "config/clusters/local-burst.yaml", tmp_path / "state", tmp_path / "out",
        settings, Point("bw30", "parameter_server", data_case, "data_aware", 0),
        tmp_path / "data", controller_python=python,
    )  # fmt: skip
    assert summary["metrics"]["tasks"] == 2
    measured = summary["links"][0]["measured_mbit"]
    assert abs(measured - 31) / 31 < 0.1, f"shaped to 31 Mbit/s, measured {measured}"
    jobs = pd.read_csv(tmp_path / "out" / "jobs.csv")
    assert set(jobs["role"]) <= {"hpc", "cloud"}
    left = client.containers.list(all=True, filters={"label": "reprise.cluster=local-burst"})
    assert not left, [c.name for c in left]
    assert not (tmp_path / "out" / "s3" / "s3-server.pgid").exists()
    run_state = json.loads((tmp_path / "out" / "run" / "testbed-run.json").read_text())
    assert run_state["state"] == "closed" and not run_state["shaping"]
    if os.environ.get("REPRISE_KEEP"):
        shutil.copytree(tmp_path / "out", os.environ["REPRISE_KEEP"])
