"""The trainers: model zoo shapes and sizes, checkpoints, the real DDP trainer at 1 and 2 ranks."""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="the trainers need the testbed extra (torch)")

from reprise.errors import ConfigError, TestbedError  # noqa: E402
from reprise.testbed.trainers.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from reprise.testbed.trainers.ddp import param_digest, train_step  # noqa: E402
from reprise.testbed.trainers.env import read_env  # noqa: E402
from reprise.testbed.trainers.names import MODELS  # noqa: E402
from reprise.testbed.trainers.zoo import workload  # noqa: E402

TRAINER = [sys.executable, "-m", "reprise.testbed.trainers.run"]
DIST_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")

# Published parameter counts of the real networks (torchvision's resnet50, vgg16 and inception_v3
# without the auxiliary head, Hugging Face's bert-base-uncased and gpt2) plus our 2-label heads.
FULL_PARAMETERS = {
    "resnet50": 25_557_032,
    "vgg16": 138_357_544,
    "inception3": 23_834_568,
    "bert": 109_482_240 + 768 * 2 + 2,
    "gpt2": 124_439_808 + 768 * 2,
}
FULL_INPUTS = {
    "resnet50": (3, 224, 224),
    "vgg16": (3, 224, 224),
    "inception3": (3, 299, 299),
    "gpt2": (1024,),
    "bert": (512,),
    "deepspeech2": (1, 128, 1000),
}


def _env(**dist: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in DIST_VARS}
    env.update(dist)
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("model", MODELS)
def test_tiny_model_trains_with_right_shapes(model: str) -> None:
    work = workload(model, "tiny")
    torch.manual_seed(0)
    net = work.build()
    opt = work.optimizer(net.parameters())
    batch = work.sample(3, torch.Generator().manual_seed(1))
    assert tuple(batch.inputs.shape) == (3, *work.input_shape)
    assert tuple(net(batch.inputs).shape) == work.output_shape(3)
    before = param_digest(net)
    loss = train_step(net, opt, work, batch)
    assert torch.isfinite(loss)
    assert all(p.grad is not None for p in net.parameters()), "a parameter got no gradient"
    assert param_digest(net) != before


@pytest.mark.parametrize("model", MODELS)
def test_full_model_is_the_real_architecture(model: str) -> None:
    work = workload(model, "full")
    assert work.input_shape == FULL_INPUTS[model]
    with torch.device("meta"):  # shapes and sizes without allocating 100M+ parameters
        net = work.build()
        if model == "deepspeech2":
            # A meta-device GRU unrolls every frame (slow); check the layout DS2 is defined by.
            grus = [m for m in net.modules() if isinstance(m, torch.nn.GRU)]
            assert [(g.hidden_size, g.bidirectional) for g in grus] == [(512, True)] * 5
            assert sum(isinstance(m, torch.nn.Conv2d) for m in net.modules()) == 1 + 2 * 3
            assert work.output_shape(2) == (2, 500, 29)
            return
        dtype = torch.long if model in ("gpt2", "bert") else torch.float
        out = net(torch.empty((2, *work.input_shape), dtype=dtype))
    assert tuple(out.shape) == work.output_shape(2)
    assert sum(p.numel() for p in net.parameters()) == FULL_PARAMETERS[model]


def test_unknown_model_and_size_are_named() -> None:
    with pytest.raises(ConfigError, match=r"unknown model 'resnet'.*resnet50"):
        workload("resnet", "tiny")
    with pytest.raises(ConfigError, match=r"unknown model size 'huge'.*tiny, full"):
        workload("bert", "huge")


def test_checkpoint_resume_continues_exactly(tmp_path: Path) -> None:
    work = workload("resnet50", "tiny")  # BatchNorm buffers and momentum must both survive
    batches = [work.sample(4, torch.Generator().manual_seed(i)) for i in range(4)]
    torch.manual_seed(0)
    a = work.build()
    opt_a = work.optimizer(a.parameters())
    for b in batches[:2]:
        train_step(a, opt_a, work, b)
    path = tmp_path / "ck" / "resnet50.pt"
    save_checkpoint(path, a, opt_a, 2, "resnet50", "tiny")
    assert [p.name for p in path.parent.iterdir()] == ["resnet50.pt"]  # no temporary file left

    torch.manual_seed(123)  # different initial weights: everything must come from the file
    b_net = work.build()
    opt_b = work.optimizer(b_net.parameters())
    restored = load_checkpoint(path, b_net, opt_b, "resnet50", "tiny")
    assert restored.iteration == 2
    for batch in batches[2:]:
        train_step(a, opt_a, work, batch)
        train_step(b_net, opt_b, work, batch)
    assert param_digest(a) == param_digest(b_net)

    with pytest.raises(TestbedError, match=r"holds resnet50 \(tiny\), not vgg16 \(tiny\)"):
        vgg = workload("vgg16", "tiny").build()
        load_checkpoint(path, vgg, work.optimizer(vgg.parameters()), "vgg16", "tiny")
    junk = tmp_path / "junk.pt"
    junk.write_text("not a checkpoint")
    with pytest.raises(TestbedError, match="cannot be read"):
        load_checkpoint(junk, b_net, opt_b, "resnet50", "tiny")


def test_env_defaults_and_errors() -> None:
    lone = read_env({})
    assert (lone.rank, lone.world_size, lone.master_addr) == (0, 1, None)
    two = read_env(
        {"RANK": "1", "WORLD_SIZE": "2", "MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "29500"}
    )
    assert (two.rank, two.world_size, two.master_port) == (1, 2, 29500)
    with pytest.raises(TestbedError, match="RANK=2 is not below WORLD_SIZE=2"):
        read_env({"RANK": "2", "WORLD_SIZE": "2", "MASTER_ADDR": "h", "MASTER_PORT": "1"})
    with pytest.raises(TestbedError, match="WORLD_SIZE=2 needs MASTER_ADDR"):
        read_env({"WORLD_SIZE": "2"})
    with pytest.raises(TestbedError, match="WORLD_SIZE='two' is not an integer"):
        read_env({"WORLD_SIZE": "two"})


def test_trainer_world_size_1_writes_result_and_checkpoint(tmp_path: Path) -> None:
    out = tmp_path / "res" / "result.json"
    ck = tmp_path / "ck.pt"
    args = ["--model", "bert", "--global-batch", "4", "--warmup", "1", "--iterations", "5"]
    run = subprocess.run(
        [*TRAINER, *args, "--out", str(out), "--checkpoint", str(ck)],
        # A lone rank with a rendezvous address works too (the SIGTERM test runs without one).
        env=_env(RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port())),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    result = json.loads(out.read_text())
    assert result["model"] == "bert" and result["size"] == "tiny"
    assert (result["world_size"], result["global_batch"], result["local_batch"]) == (1, 4, 4)
    assert result["backend"] == "gloo" and result["device"] == "cpu"
    assert (result["iterations"], result["start_iteration"], result["end_iteration"]) == (5, 0, 6)
    assert result["iterations_per_s"] == pytest.approx(5 / result["seconds"])
    assert result["cpu_seconds_rank0"] > 0
    assert result["samples_per_s"] == pytest.approx(4 * result["iterations_per_s"])
    assert result["hosts"] == [socket.gethostname()]
    assert result["torch_version"] == torch.__version__
    assert sorted(p.name for p in out.parent.iterdir()) == ["result.json"]
    net = workload("bert", "tiny").build()
    opt = workload("bert", "tiny").optimizer(net.parameters())
    assert load_checkpoint(ck, net, opt, "bert", "tiny").iteration == 6
    assert param_digest(net) == result["param_digests"][0]


def test_trainer_two_ranks_resume_and_end_identical(tmp_path: Path) -> None:
    work = workload("resnet50", "tiny")
    torch.manual_seed(7)
    net = work.build()
    opt = work.optimizer(net.parameters())
    ck = tmp_path / "start.pt"
    save_checkpoint(ck, net, opt, 10, "resnet50", "tiny")
    out = tmp_path / "result.json"
    port = str(_free_port())
    args = ["--model", "resnet50", "--global-batch", "6", "--warmup", "1", "--iterations", "4"]
    procs = [
        subprocess.Popen(
            [*TRAINER, *args, "--out", str(out), "--resume", str(ck), "--timeout", "60"],
            env=_env(
                RANK=str(r),
                WORLD_SIZE="2",
                LOCAL_RANK=str(r),
                MASTER_ADDR="127.0.0.1",
                MASTER_PORT=port,
            ),
            stderr=subprocess.PIPE,
            text=True,
        )
        for r in range(2)
    ]
    errs = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errs
    result = json.loads(out.read_text())
    assert (result["world_size"], result["local_batch"]) == (2, 3)
    assert (result["start_iteration"], result["end_iteration"]) == (10, 15)
    assert len(result["hosts"]) == 2
    first, second = result["param_digests"]
    assert first == second, "replicas diverged: gradients were not averaged"
    assert first != param_digest(net), "the parameters did not change"


@pytest.mark.parametrize(
    ("args", "dist", "message"),
    [
        (["--model", "resnet", "--global-batch", "4"], {}, "invalid choice: 'resnet'"),
        (["--model", "vgg16", "--global-batch", "0"], {}, "0 is below the minimum 1"),
        (
            ["--model", "gpt2", "--global-batch", "4", "--iterations", "x"],
            {},
            "'x' is not an integer",
        ),
        (
            ["--model", "gpt2", "--global-batch", "5"],
            {"WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29999"},
            "--global-batch 5 does not split over WORLD_SIZE=2 ranks: use a multiple of 2",
        ),
        (["--model", "gpt2", "--global-batch", "4"], {"WORLD_SIZE": "2"}, "needs MASTER_ADDR"),
        (
            ["--model", "bert", "--global-batch", "4", "--resume", "/nonexistent.pt"],
            {},
            "no such file",
        ),
        (
            ["--model", "bert", "--global-batch", "4", "--out", "/proc/reprise/r.json"],
            {},
            "--out /proc/reprise/r.json: cannot create or write to /proc/reprise",
        ),
    ],
)
def test_trainer_rejects_bad_arguments(
    tmp_path: Path, args: list[str], dist: dict[str, str], message: str
) -> None:
    out = tmp_path / "r.json"
    run = subprocess.run(
        [*TRAINER, "--out", str(out), *args],  # a later --out in args wins
        env=_env(**dist),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2
    assert message in run.stderr
    assert not out.exists()


def _start_and_wait_for_training(out: Path) -> subprocess.Popen[str]:
    args = ["--model", "vgg16", "--global-batch", "4", "--iterations", "1000000"]
    proc = subprocess.Popen(
        [*TRAINER, *args, "--out", str(out)], env=_env(), stderr=subprocess.PIPE, text=True
    )
    assert proc.stderr is not None
    deadline = time.monotonic() + 60
    seen = ""
    while "warmup done" not in seen:  # training has started once the warmup is done
        ready, _, _ = select.select([proc.stderr], [], [], 1.0)
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            pytest.fail(f"the trainer did not start training: {seen}")
        if ready:
            seen += proc.stderr.readline()
    return proc


@pytest.mark.parametrize("reader", ["alive", "gone"])
def test_trainer_stops_promptly_on_sigterm(tmp_path: Path, reader: str) -> None:
    """SIGTERM mid-training ends the trainer within seconds, also when its log reader died."""
    out = tmp_path / "r.json"
    proc = _start_and_wait_for_training(out)
    try:
        assert proc.stderr is not None
        if reader == "gone":
            proc.stderr.close()  # what a killed parent leaves: writes to stderr fail
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
        took = time.monotonic() - sent
        rest = proc.stderr.read() if reader == "alive" else ""
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, rest
    assert took < 10
    if reader == "alive":
        assert "SIGTERM received" in rest and "no result written" in rest
    assert not out.exists()
