"""S3 for the study's second data case: a local S3 API server (moto) or a real bucket, and the
upload of the generated inputs. `python -m reprise.testbed.systems.ray_burst.s3 serve|upload`"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from reprise.errors import TestbedError

# moto accepts any credentials; these keep boto3 from looking for real ones.
LOCAL_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "reprise",
    "AWS_SECRET_ACCESS_KEY": "reprise",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def upload(endpoint: str | None, bucket: str, data: Path) -> int:
    """Create the bucket if needed and put every input file under its relative path."""
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
    if bucket not in existing:
        client.create_bucket(Bucket=bucket)
    count = 0
    for path in sorted(p for p in data.rglob("*.png") if p.is_file()):
        client.upload_file(str(path), bucket, str(path.relative_to(data)))
        count += 1
    return count


def serve(port: int, bucket: str, data: Path, ready: Path) -> None:
    """Run moto's S3 server on all addresses until SIGTERM; `ready` appears once it holds data."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="0.0.0.0", port=port)
    server.start()
    stop = False

    def on_term(signum: int, frame: Any) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    try:
        count = upload(f"http://127.0.0.1:{port}", bucket, data)
        ready.write_text(f"{count}\n")
        while not stop:
            time.sleep(0.2)
    finally:
        server.stop()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return int(s.getsockname()[1])


class LocalS3:
    """The moto server as a child process in its own process group, stopped by that group."""

    def __init__(self, python: str, data: Path, bucket: str, workdir: Path) -> None:
        self.python, self.data, self.bucket, self.workdir = python, data, bucket, workdir
        self.port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 120.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        ready = self.workdir / "s3-ready"
        ready.unlink(missing_ok=True)
        log = (self.workdir / "s3-server.log").open("wb")
        argv = [self.python, "-m", __name__, "serve", "--port", str(self.port)]
        argv += ["--bucket", self.bucket, "--data", str(self.data), "--ready", str(ready)]
        self.proc = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **LOCAL_CREDENTIALS},
            start_new_session=True,
        )
        (self.workdir / "s3-server.pgid").write_text(f"{self.proc.pid}\n")
        deadline = time.monotonic() + timeout_s
        while not ready.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = (self.workdir / "s3-server.log").read_text(errors="replace")[-1500:]
                raise TestbedError(f"the local S3 server did not come up; its log ends:\n{tail}")
            time.sleep(0.2)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        for sig, wait_s in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout=wait_s)
                break
            except subprocess.TimeoutExpired:
                continue
        (self.workdir / "s3-server.pgid").unlink(missing_ok=True)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="ray_burst.s3")
    sub = parser.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--ready", type=Path, required=True)
    u = sub.add_parser("upload")
    u.add_argument("--endpoint")
    for p in (s, u):
        p.add_argument("--bucket", required=True)
        p.add_argument("--data", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.cmd == "serve":
        serve(args.port, args.bucket, args.data, args.ready)
    else:
        print(upload(args.endpoint, args.bucket, args.data), "files uploaded")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
