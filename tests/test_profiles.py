"""Throughput profiles and cluster specs: nan and empty cells, lookups, malformed files."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from reprise.data.clusters import load_cluster_spec
from reprise.data.profiles import ThroughputProfiles, load_profiles
from reprise.errors import TraceError
from reprise.policies.elasticflow.limits import max_gpu_elasticflow
from reprise.sim.limits import max_gpu_from_profile


def test_t4_profile_values(t4_profiles: ThroughputProfiles) -> None:
    assert t4_profiles.tput("deepspeech2", 320, 1) == pytest.approx(0.09844573052944394)
    assert math.isnan(t4_profiles.tput("deepspeech2", 320, 64))
    assert t4_profiles.models == {"bert", "cifar10", "deepspeech2", "imagenet", "ncf", "yolov3"}


def test_empty_cell_counts_for_max_gpu_but_cannot_be_used(
    a100_profiles: ThroughputProfiles,
) -> None:
    # deepspeech2 / batch 32 has an EMPTY 64-GPU cell: the table rule does not skip it
    assert max_gpu_from_profile(a100_profiles, "deepspeech2", 32) == 32
    with pytest.raises(TraceError, match="empty cell"):
        a100_profiles.tput("deepspeech2", 32, 64)


def test_max_gpu_rules(t4_profiles: ThroughputProfiles) -> None:
    assert max_gpu_from_profile(t4_profiles, "yolov3", 64) == 16
    assert max_gpu_from_profile(t4_profiles, "ncf", 32768) == 64
    assert max_gpu_elasticflow("T4", "ncf", 32768) == 1
    assert max_gpu_elasticflow("T4", "yolov3", 64) == 4
    assert max_gpu_elasticflow("A100", "gpt2", 256) == 32
    assert max_gpu_elasticflow("A100", "resnet50", 128) == 64


def test_malformed_profile_cell(tmp_path: Path) -> None:
    (tmp_path / "m.csv").write_text("global_batch_size,1,2\n64,1.5,x\n")
    with pytest.raises(TraceError, match=r"m.csv: line 2, column 2: 'x' is not a number"):
        load_profiles(tmp_path)


def test_cluster_spec(tmp_path: Path) -> None:
    path = tmp_path / "n2g4.csv"
    path.write_text(
        "num_switch,num_node_p_switch,num_gpu_p_node,num_cpu_p_node,mem_p_node\n1,2,4,8,16\n"
    )
    spec = load_cluster_spec(path)
    assert (spec.name, spec.num_nodes, spec.num_gpus) == ("n2g4", 2, 8)
    path.write_text("num_switch,num_node_p_switch,num_gpu_p_node\n1,two,4\n")
    with pytest.raises(TraceError, match="num_node_p_switch"):
        load_cluster_spec(path)
