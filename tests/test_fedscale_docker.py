"""FedScale in containers: the images built FROM the node image, a bridge run, a one-node swarm
overlay run, an executor container killed mid-run, a failing image build; nothing left behind."""

from __future__ import annotations

import json
import shutil
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from infra.docker_daemon import daemon_answers

docker = pytest.importorskip("docker")

from reprise.errors import ProvisionError, TestbedError  # noqa: E402
from reprise.testbed.image import build_node_image  # noqa: E402
from reprise.testbed.systems.fedscale.containers import LABEL  # noqa: E402
from reprise.testbed.systems.fedscale.dataset import DigitsSpec, build_digits  # noqa: E402
from reprise.testbed.systems.fedscale.images import ASSETS, build_fedscale_images  # noqa: E402
from reprise.testbed.systems.fedscale.job import FedScaleSettings  # noqa: E402
from reprise.testbed.systems.fedscale.run import run_fedscale  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


try:
    import fedscale  # noqa: F401

    HAVE_FEDSCALE = True
except ImportError:
    HAVE_FEDSCALE = False

NO_EXTRA = 'the fedscale extra is missing: pip install -c requirements.lock -e ".[fedscale]"'
pytestmark = [
    pytest.mark.docker,
    pytest.mark.slow,
    pytest.mark.skipif(
        not daemon_answers(),
        reason="no Docker daemon answers (start one as root: bash tests/infra/start-dockerd.sh)",
    ),
    pytest.mark.skipif(not HAVE_FEDSCALE, reason=NO_EXTRA),
]


@pytest.fixture(scope="module")
def client() -> Any:
    return docker.from_env(timeout=600)


@pytest.fixture(scope="module")
def node_record(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("node")
    record = work / "node.json"
    build_node_image(workdir=work, log=work / "build.log", record=record, tag="reprise-node:test")
    return record


@pytest.fixture(scope="module")
def images(node_record: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("fedscale-images")
    result = build_fedscale_images(
        node_record=node_record,
        lock=REPO / "requirements.lock",
        workdir=work,
        log_path=work / "build.log",
        tag_prefix="reprise-fedscale-test",
    )
    record = work / "fedscale.json"
    record.write_text(json.dumps(result))
    return record


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("digits")
    build_digits(root, DigitsSpec(clients=20, seed=0))
    return root


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tiny(deployment: str, rounds: int = 4) -> FedScaleSettings:
    return FedScaleSettings(
        deployment=deployment,
        rounds=rounds,
        participants=4,
        local_steps=5,
        port=_free_port(),
        timeout_s=600,
    )


def _ours(client: Any) -> set[str]:
    """Ids of every FedScale container and network Reprise made on this daemon."""
    containers = client.containers.list(all=True, filters={"label": LABEL})
    networks = client.networks.list(filters={"label": LABEL})
    return {c.id for c in containers} | {n.id for n in networks}


def _leftovers(client: Any, before: set[str]) -> set[str]:
    """What the test's run left: FedScale objects that were not there when it started (a user's
    or another test's run on the same daemon is not this test's to judge)."""
    return _ours(client) - before


def test_images_hold_fedscale_and_the_init_script(images: Path, client: Any) -> None:
    record = json.loads(images.read_text())
    for role in ("aggregator", "executor"):
        image = client.images.get(record["images"][role]["image_id"])
        assert image.labels["reprise.role"] == role
        assert any(e.endswith("fedscale_init.py") for e in image.attrs["Config"]["Entrypoint"])
    out = client.containers.run(
        record["images"]["executor"]["image_id"],
        entrypoint=[
            "/opt/venv/bin/python",
            "-c",
            "import fedscale, torch; print(torch.__version__)",
        ],
        remove=True,
        network_mode="none",
    )
    assert b"+cpu" in out  # the node image's torch, not a CUDA build pulled in by torchvision


def test_bridge_run_trains_and_leaves_nothing(
    images: Path, digits: Path, client: Any, tmp_path: Path
) -> None:
    before = _ours(client)
    summary = run_fedscale(_tiny("docker"), digits, tmp_path / "out", image_record=images)
    rounds = pd.read_csv(tmp_path / "out" / "rounds.csv")
    assert list(rounds["round"]) == [1, 2, 3]
    assert rounds["test_top1"].notna().all()
    assert summary["deployment_facts"]["network_driver"] == "bridge"
    assert (tmp_path / "out" / "logs" / "executor2.log").is_file()
    assert _leftovers(client, before) == set()


def test_swarm_overlay_run_on_a_one_node_swarm(
    images: Path, digits: Path, client: Any, tmp_path: Path
) -> None:
    before = _ours(client)
    if client.info()["Swarm"]["LocalNodeState"] == "active":
        pytest.skip("this daemon is already in a swarm; the test would not own it")
    summary = run_fedscale(_tiny("swarm"), digits, tmp_path / "out", image_record=images)
    assert summary["deployment_facts"]["network_driver"] == "overlay"
    assert summary["deployment_facts"]["swarm"] == "initialised"
    assert summary["rounds_completed"] == 3
    assert _leftovers(client, before) == set()
    assert client.info()["Swarm"]["LocalNodeState"] == "inactive"


def test_killed_executor_container_is_named_and_nothing_is_left(
    images: Path, digits: Path, client: Any, tmp_path: Path
) -> None:
    before = _ours(client)
    out = tmp_path / "out"
    killed: list[str] = []

    def killer() -> None:
        deadline = time.monotonic() + 400
        while time.monotonic() < deadline:
            logs = list((out / "work" / "fedscale").glob("logs/*/*/aggregator/log"))
            if logs and "round: 2," in logs[0].read_text():
                for c in client.containers.list(filters={"label": LABEL}):
                    if c.name.endswith("-executor2") and c.id not in before:
                        c.kill()
                        killed.append(c.name)
                return
            time.sleep(0.5)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    with pytest.raises(
        TestbedError, match=r"executor 2 \(container fedscale-\w+-executor2\) ended"
    ):
        run_fedscale(_tiny("docker", rounds=10), digits, out, image_record=images)
    thread.join(5)
    assert killed
    assert _leftovers(client, before) == set()


def test_failing_image_build_is_named_and_tags_nothing(
    node_record: Path, client: Any, tmp_path: Path
) -> None:
    assets = tmp_path / "assets"
    shutil.copytree(ASSETS, assets)
    dockerfile = assets / "Dockerfile"
    dockerfile.write_text(
        dockerfile.read_text().replace(
            "COPY fedscale_init.py", "RUN echo broken on purpose && exit 3\nCOPY fedscale_init.py"
        )
    )
    with pytest.raises(ProvisionError, match=r"docker build of reprise-fedscale-broken-aggregator"):
        build_fedscale_images(
            node_record=node_record,
            lock=REPO / "requirements.lock",
            workdir=tmp_path / "work",
            log_path=tmp_path / "build.log",
            tag_prefix="reprise-fedscale-broken",
            assets=assets,
        )
    assert "broken on purpose" in (tmp_path / "build.log").read_text()
    assert client.images.list(name="reprise-fedscale-broken-aggregator") == []
    assert client.images.list(name="reprise-fedscale-broken-executor") == []
