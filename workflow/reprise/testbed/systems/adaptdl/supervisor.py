"""The supervisor endpoint our controller gives AdaptDL jobs: rank 0 of each job PUTs its
scheduling hints (fitted step-time parameters, gradient statistics, batch-size limits) to
`<ADAPTDL_SUPERVISOR_URL>/hints/<job>` every 30 s, as it does to AdaptDL's own supervisor on
Kubernetes. The hints become the Pollux policy's goodput model of the job (`JobHints.perf` is
the policy's PerfParams); a job without hints yet gets the policy's initial allocation.
"""

from __future__ import annotations

import json
import math
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from reprise.errors import TestbedError
from reprise.policies.pollux.goodput import PerfParams


@dataclass(frozen=True)
class JobHints:
    job: str
    perf: PerfParams
    grad_sqr: float | None
    grad_var: float | None
    init_batch_size: int
    max_batch_size: int
    local_bsz_bounds: tuple[int, int] | None
    max_profiled_replicas: int
    gradient_accumulation: bool
    received_at: float


def _number(body: dict[str, Any], key: str) -> float:
    value = body.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{key} must be a finite number, not {value!r}")
    return float(value)


def hints_from_json(job: str, body: Any, now: float) -> JobHints:
    """AdaptDL's hint document (sched_hints.SCHED_HINTS keys); ValueError names a bad field."""
    if not isinstance(body, dict):
        raise ValueError("the hints must be a JSON object")
    perf = body.get("perfParams")
    if not isinstance(perf, dict):
        raise ValueError("perfParams must be an object of the fitted step-time parameters")
    params = PerfParams(*(_number(perf, k) for k in PerfParams._fields))
    grad = body.get("gradParams")
    if grad is not None and not isinstance(grad, dict):
        raise ValueError("gradParams must be an object with norm and var")
    bounds = body.get("localBszBounds")
    if bounds is not None and (
        not isinstance(bounds, list)
        or len(bounds) != 2
        or not all(isinstance(b, int) for b in bounds)
    ):
        raise ValueError(f"localBszBounds must be [min, max], not {bounds!r}")
    return JobHints(
        job=job,
        perf=params,
        grad_sqr=_number(grad, "norm") if grad else None,
        grad_var=_number(grad, "var") if grad else None,
        init_batch_size=int(_number(body, "initBatchSize")),
        max_batch_size=int(_number(body, "maxBatchSize")),
        local_bsz_bounds=(bounds[0], bounds[1]) if bounds else None,
        max_profiled_replicas=int(_number(body, "maxProfiledReplicas")),
        gradient_accumulation=bool(body.get("gradientAccumulation", False)),
        received_at=now,
    )


class Supervisor:
    """An HTTP server on `host` (port chosen by the system) holding each job's latest hints."""

    def __init__(self, host: str = "127.0.0.1", advertise: str | None = None) -> None:
        self._hints: dict[str, JobHints] = {}
        self._rejected: list[str] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer((host, 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._advertise = advertise or host

    @property
    def url(self) -> str:
        return f"http://{self._advertise}:{self._server.server_address[1]}"

    def __enter__(self) -> Supervisor:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=10)
        self._server.server_close()

    def hints(self, job: str) -> JobHints | None:
        with self._lock:
            return self._hints.get(job)

    def rejected(self) -> list[str]:
        """Why hint documents were refused (job and reason), oldest first."""
        with self._lock:
            return list(self._rejected)

    def _store(self, job: str, body: bytes) -> tuple[int, str]:
        try:
            hints = hints_from_json(job, json.loads(body), time.time())
        except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
            with self._lock:
                self._rejected.append(f"{job}: {exc}")
            return 400, str(exc)
        with self._lock:
            self._hints[job] = hints
        return 200, "ok"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        supervisor = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, code: int, text: str) -> None:
                data = text.encode()
                self.send_response(code)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_PUT(self) -> None:
                parts = self.path.strip("/").split("/")
                if len(parts) != 2 or parts[0] != "hints":
                    self._answer(404, "PUT /hints/<job> only")
                    return
                length = int(self.headers.get("Content-Length") or 0)
                self._answer(*supervisor._store(parts[1], self.rfile.read(length)))

            def do_GET(self) -> None:
                # Our runner hands every replica rank 0's address, so no job should ask.
                self._answer(404, "no discovery here: the runner sets ADAPTDL_MASTER_ADDR")

            def log_message(self, format: str, *args: Any) -> None:
                return  # one line per PUT every 30 s per job would only fill the run log

        return Handler


def require_hints(supervisor: Supervisor, job: str, timeout_s: float) -> JobHints:
    """Wait for a job's first hints; TestbedError if none arrive in time."""
    deadline = time.monotonic() + timeout_s
    while (hints := supervisor.hints(job)) is None:
        if time.monotonic() > deadline:
            raise TestbedError(
                f"job {job} sent no scheduling hints to {supervisor.url} in {timeout_s:.0f} s "
                f"(refused: {supervisor.rejected() or 'none'})"
            )
        time.sleep(0.2)
    return hints
