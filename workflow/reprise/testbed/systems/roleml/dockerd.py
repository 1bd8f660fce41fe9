"""The experimental Docker daemon a role-offloading run starts beside the host's own, and stops.

`docker checkpoint` needs a daemon in experimental mode; the host's daemon is left as it is. The
run's daemon has its own socket, exec root, bridge and containerd namespace; its data root is
kept between runs, so the role image is loaded into it once. It runs CRIU from the pipeline's
build (first on its PATH), and CRIU reads `tcp-close` from the file CRIU_CONFIG_FILE names:
Docker asks runc for no TCP option, and a role holds gRPC connections, which CRIU otherwise
refuses to dump ("Connected TCP socket"); restored closed, they are reconnected by gRPC.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import signal
import subprocess
import time
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

from reprise.errors import ProvisionError, TestbedError

LABEL = "reprise.roleml.run"
# runc's CRIU (RPC mode) reads this file after the options Docker sends
CRIU_CONFIG = "tcp-close\n"
SUBNETS = "10.215.0.0/16"


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ProvisionError(
            f"{name} not found on PATH; role offloading on Docker needs the Docker engine "
            "(dockerd and the docker CLI), or testbed.roleml.runtime: process"
        )
    return path


def _used_networks() -> list[ipaddress.IPv4Network]:
    out = subprocess.run(
        ["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True, check=True
    ).stdout
    nets = []
    for line in out.splitlines():
        fields = line.split()
        if "inet" in fields:
            nets.append(ipaddress.IPv4Interface(fields[fields.index("inet") + 1]).network)
    return nets


def free_subnet(prefix: int = 24) -> ipaddress.IPv4Network:
    """A /24 of 10.215.0.0/16 that no interface of this host is on."""
    used = _used_networks()
    for net in ipaddress.IPv4Network(SUBNETS).subnets(new_prefix=prefix):
        if not any(net.overlaps(u) for u in used):
            return net
    raise ProvisionError(f"no free /{prefix} left in {SUBNETS} for the run's container network")


@dataclass
class ExperimentalDockerd:
    """One run's experimental dockerd, its bridge, container network and forwarding rule."""

    run_id: str  # short: it names the bridges (15 characters at most)
    data_root: Path
    criu_binary: Path
    state: Path = field(init=False)  # socket and exec root (a short path: socket names are short)
    proc: subprocess.Popen[bytes] | None = None
    subnet: ipaddress.IPv4Network | None = None
    forward_rule: list[str] = field(default_factory=list)
    _bridges: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.state = Path("/tmp") / f"reprise-roleml-{self.run_id}"

    @property
    def socket(self) -> str:
        return f"unix://{self.state / 'docker.sock'}"

    @property
    def network(self) -> str:
        return f"reprise-roleml-{self.run_id}"

    @property
    def gateway(self) -> str:
        """The host's address on the container network (the conductor listens there)."""
        assert self.subnet is not None
        return str(self.subnet.network_address + 1)

    def address(self, index: int) -> str:
        """The fixed address of the index-th actor container (kept when it moves)."""
        assert self.subnet is not None
        return str(self.subnet.network_address + 10 + index)

    def docker(
        self, *args: str, timeout: float = 120, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """The docker CLI against this daemon; a failure names the command and its message."""
        argv = [_tool("docker"), "-H", self.socket, *args]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise TestbedError(f"`docker {' '.join(args[:3])}` took over {timeout:.0f}s") from exc
        if check and done.returncode != 0:
            raise TestbedError(
                f"`docker {' '.join(args[:3])}` failed ({done.returncode}): "
                f"{done.stderr.strip()[-500:]}"
            )
        return done

    def start(self, timeout: float = 90) -> None:
        """Start the daemon (its own session, stopped by PID in stop()) and its network."""
        dockerd = _tool("dockerd")
        _tool("docker")
        if self.state.exists():
            raise ProvisionError(
                f"{self.state} exists: another run with id {self.run_id} is up, or one was "
                "killed; stop its dockerd (pid in dockerd.pid there) and remove the directory"
            )
        self.state.mkdir(parents=True)
        self.data_root.mkdir(parents=True, exist_ok=True)
        criu_dir = self.state / "bin"
        criu_dir.mkdir()
        shutil.copy2(self.criu_binary, criu_dir / "criu")
        (self.state / "criu.conf").write_text(CRIU_CONFIG)
        # the default bridge is one of ours: a daemon without one would take the host's docker0
        bridge = f"rml{self.run_id[:8]}d"
        self._ip("link", "add", bridge, "type", "bridge")
        self._bridges.append(bridge)
        # containerd stages every checkpoint in a "ctrd-checkpoint*" folder of XDG_RUNTIME_DIR (or
        # TMPDIR) and does not remove it (about 250 MB per offload): keep those in the state
        # directory, which stop() removes
        scratch = self.state / "tmp"
        scratch.mkdir()
        env = {
            **os.environ,
            "PATH": f"{criu_dir}:{os.environ.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}",
            "CRIU_CONFIG_FILE": str(self.state / "criu.conf"),
            "XDG_RUNTIME_DIR": str(scratch),
            "TMPDIR": str(scratch),
        }
        argv = [
            dockerd,
            "--experimental",
            "-H", self.socket,
            "--data-root", str(self.data_root),
            "--exec-root", str(self.state / "exec"),
            "--pidfile", str(self.state / "dockerd.pid"),
            "--bridge", bridge,
            "--iptables=false",
            "--ip-masq=false",
            "--containerd-namespace", f"reprise-roleml-{self.run_id}",
            "--containerd-plugins-namespace", f"reprise-roleml-{self.run_id}-plugins",
        ]  # fmt: skip
        with (self.state / "dockerd.log").open("w") as log:
            self.proc = subprocess.Popen(
                argv,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise ProvisionError(
                    f"the experimental dockerd exited with {self.proc.returncode}; see "
                    f"{self.state / 'dockerd.log'}: {self._log_tail()}"
                )
            info = self.docker("info", "--format", "{{json .}}", check=False, timeout=10)
            if info.returncode == 0:
                break
            if time.monotonic() > deadline:
                raise ProvisionError(f"the experimental dockerd did not answer in {timeout:.0f}s")
            time.sleep(0.5)
        facts = json.loads(info.stdout)
        if not facts.get("ExperimentalBuild"):
            raise ProvisionError("dockerd started with --experimental reports no experimental mode")
        self._network()

    def _network(self) -> None:
        self.subnet = free_subnet()
        bridge = f"rml{self.run_id[:8]}n"
        self.docker(
            "network", "create",
            "--subnet", str(self.subnet),
            "--gateway", self.gateway,
            "-o", f"com.docker.network.bridge.name={bridge}",
            "--label", f"{LABEL}={self.run_id}",
            self.network,
        )  # fmt: skip
        self._bridges.append(bridge)
        # Docker's own rules drop forwarded traffic (policy DROP); actors talk across the bridge
        chain = "DOCKER-USER" if self._iptables("-S", "DOCKER-USER", check=False) else "FORWARD"
        rule = [chain, "-i", bridge, "-o", bridge, "-j", "ACCEPT"]
        if self._iptables("-I", *rule, check=False):
            self.forward_rule = rule

    def load_image(self, image_id: str, tag: str) -> float:
        """Copy `image_id` from the host's daemon unless this data root has it; seconds taken."""
        if self.docker("image", "inspect", image_id, check=False).returncode == 0:
            return 0.0
        started = time.monotonic()
        save = subprocess.Popen([_tool("docker"), "save", tag], stdout=subprocess.PIPE)
        load = subprocess.run(
            [_tool("docker"), "-H", self.socket, "load"],
            stdin=save.stdout,
            capture_output=True,
            text=True,
        )
        if save.stdout is not None:
            save.stdout.close()
        saved = save.wait()
        if saved != 0 or load.returncode != 0:
            raise ProvisionError(
                f"copying the role image {tag} into the experimental daemon failed (save "
                f"{saved}, load {load.returncode}: {load.stderr.strip()[-300:]}); rebuild it with "
                "`snakemake roleml_offload -R roleml_image`"
            )
        if self.docker("image", "inspect", image_id, check=False).returncode != 0:
            raise ProvisionError(
                f"{tag} in the host's daemon is no longer image {image_id[:19]} of the record; "
                "rebuild it with `snakemake roleml_offload -R roleml_image`"
            )
        return time.monotonic() - started

    def checkpoints(self, container_id: str) -> Path:
        """Where this daemon looks for a container's checkpoints (Docker 20.10 restores only
        from there: `start --checkpoint-dir` answers "custom checkpointdir is not supported")."""
        return self.data_root / "containers" / container_id / "checkpoints"

    def stop(self) -> None:
        """Remove the run's containers and network, stop the daemon by PID, remove the bridges,
        the forwarding rule and the state directory; safe to call twice."""
        if self.proc is not None and self.proc.poll() is None:
            ids = self.docker(
                "ps", "-aq", "--filter", f"label={LABEL}={self.run_id}", check=False
            ).stdout.split()
            if ids:
                self.docker("rm", "-f", *ids, check=False, timeout=180)
            self.docker("network", "rm", self.network, check=False)
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                with suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if self.proc is not None:
            # its containerd shares the session: it must not outlive the daemon
            with suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        if self.forward_rule:
            self._iptables("-D", *self.forward_rule, check=False)
            self.forward_rule = []
        for bridge in self._bridges:
            self._ip("link", "del", bridge, check=False)
        self._bridges.clear()
        shutil.rmtree(self.state, ignore_errors=True)

    def _log_tail(self) -> str:
        with suppress(OSError):
            return " | ".join((self.state / "dockerd.log").read_text().splitlines()[-3:])
        return ""

    @staticmethod
    def _ip(*args: str, check: bool = True) -> None:
        done = subprocess.run(["ip", *args], capture_output=True, text=True)
        if check and done.returncode != 0:
            raise ProvisionError(f"`ip {' '.join(args)}` failed: {done.stderr.strip()}")

    @staticmethod
    def _iptables(*args: str, check: bool = True) -> bool:
        path = shutil.which("iptables")
        if path is None:
            return False
        done = subprocess.run([path, *args], capture_output=True, text=True)
        if check and done.returncode != 0:
            raise ProvisionError(f"`iptables {' '.join(args)}` failed: {done.stderr.strip()}")
        return done.returncode == 0
