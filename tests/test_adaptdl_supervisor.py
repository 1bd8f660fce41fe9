"""The supervisor endpoint: AdaptDL jobs' scheduling hints become the Pollux policy's goodput
parameters; malformed documents are refused and reported."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from reprise.errors import TestbedError
from reprise.policies.pollux.goodput import PerfParams
from reprise.testbed.systems.adaptdl.supervisor import Supervisor, require_hints
from tests.test_adaptdl_trainer import TRAINER, _args, _free_port, job_env, needs_adaptdl

HINTS = {
    "initBatchSize": 32,
    "localBszBounds": [8, 64],
    "globalBatchSize": None,
    "maxBatchSize": 128,
    "maxProfiledReplicas": 2,
    "gradientAccumulation": True,
    "gradParams": {"norm": 0.25, "var": 1.5},
    "perfParams": {
        "alpha_c": 0.01,
        "beta_c": 0.002,
        "alpha_n": 1e-8,
        "beta_n": 1e-8,
        "alpha_r": 0.003,
        "beta_r": 1e-8,
        "gamma": 1.2,
    },
}


def _put(url: str, body: bytes) -> int:
    request = urllib.request.Request(url, data=body, method="PUT")
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_hints_become_the_policys_goodput_parameters() -> None:
    with Supervisor() as sup:
        assert _put(f"{sup.url}/hints/job-3", json.dumps(HINTS).encode()) == 200
        hints = require_hints(sup, "job-3", 5)
        assert hints.perf == PerfParams(0.01, 0.002, 1e-8, 1e-8, 0.003, 1e-8, 1.2)
        assert (hints.grad_sqr, hints.grad_var) == (0.25, 1.5)
        assert hints.local_bsz_bounds == (8, 64) and hints.max_batch_size == 128
        bad = json.loads(json.dumps(HINTS))
        bad["perfParams"]["gamma"] = "fast"
        assert _put(f"{sup.url}/hints/job-3", json.dumps(bad).encode()) == 400
        assert _put(f"{sup.url}/hints/job-4", b"{not json") == 400
        assert sup.hints("job-3") == hints  # a refused document replaces nothing
        assert sup.hints("job-4") is None
        assert sup.rejected()[0] == "job-3: gamma must be a finite number, not 'fast'"
        with pytest.raises(TestbedError, match="job-4 sent no scheduling hints"):
            require_hints(sup, "job-4", 0.5)


@needs_adaptdl
@pytest.mark.slow
def test_a_real_job_reports_its_fitted_model(tmp_path: Path) -> None:
    (tmp_path / "ckpt").mkdir()
    with Supervisor() as sup:
        env = job_env(tmp_path / "ckpt", _free_port(), supervisor_url=sup.url, job_id="job-5")
        log = (tmp_path / "job.log").open("w")
        proc = subprocess.Popen(
            [*TRAINER, *_args(tmp_path / "status.json", 256 * 1000)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            hints = require_hints(sup, "job-5", 240)  # AdaptDL reports every 30 s
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert hints.init_batch_size == 32 and hints.max_batch_size == 128
    assert hints.gradient_accumulation and hints.max_profiled_replicas == 1
    assert hints.perf.beta_c > 0 and hints.perf.gamma >= 1.0
