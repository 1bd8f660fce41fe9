"""The runtime's gRPC messages and stubs, compiled from its `.proto` on first use.

Where the checkout is at hand (the controller), grpcio-tools compiles
`workflow/testbed/runtime/elastic_runtime.proto` into a cache folder keyed by the file's digest
and the compiler's version. Nodes get those generated files from the controller (`install_argv`)
and find them through REPRISE_RUNTIME_STUBS, so they need only grpcio and protobuf.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import importlib.util
import os
import shutil
import sys
import tempfile
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

from reprise.errors import TestbedError

PROTO_NAME = "elastic_runtime"
ASSETS = Path(__file__).resolve().parents[4] / "workflow" / "testbed" / "runtime"
PROTO = ASSETS / f"{PROTO_NAME}.proto"
STUBS_ENV = "REPRISE_RUNTIME_STUBS"
MODULES = (f"{PROTO_NAME}_pb2", f"{PROTO_NAME}_pb2_grpc")
PROTOCOL = 1
"""Bumped when agents and controllers of different versions must not talk to each other."""


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


def _cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "reprise" / "runtime-stubs"


def _compile(proto: Path, out: Path) -> None:
    """protoc with the gRPC plugin into a fresh folder, renamed into place when complete."""
    try:
        import grpc_tools  # type: ignore[import-untyped]
        from grpc_tools import protoc
    except ImportError:
        raise TestbedError(
            f"compiling {proto} needs grpcio-tools (pinned in requirements.lock): "
            "pip install -c requirements.lock grpcio-tools"
        ) from None
    includes = Path(grpc_tools.__file__).parent / "_proto"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".compiling-", dir=out.parent))
    try:
        status = protoc.main(
            [
                "grpc_tools.protoc",
                f"-I{proto.parent}",
                f"-I{includes}",
                f"--python_out={tmp}",
                f"--grpc_python_out={tmp}",
                str(proto),
            ]
        )
        if status != 0:
            raise TestbedError(f"protoc failed on {proto} (status {status}); see its message above")
        try:
            tmp.rename(out)
        except OSError:
            if not all((out / f"{m}.py").is_file() for m in MODULES):
                raise
            # another process compiled the same file first: its copy is as good as ours
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def stub_dir() -> Path:
    """The folder holding the generated modules: REPRISE_RUNTIME_STUBS, else the compile cache."""
    shipped = os.environ.get(STUBS_ENV)
    if shipped:
        folder = Path(shipped)
        missing = [m for m in MODULES if not (folder / f"{m}.py").is_file()]
        if missing:
            raise TestbedError(
                f"{STUBS_ENV}={shipped} lacks {', '.join(missing)}: the controller installs them "
                "before starting an agent; unset the variable to compile from the checkout"
            )
        return folder
    if not PROTO.is_file():
        raise TestbedError(
            f"no {PROTO} to compile and {STUBS_ENV} is not set: run from a checkout, or point "
            f"{STUBS_ENV} at the generated modules"
        )
    digest = hashlib.sha256(PROTO.read_bytes())
    tools = f"grpcio-tools {_version('grpcio-tools')} protobuf {_version('protobuf')}"
    digest.update(tools.encode())
    folder = _cache_root() / digest.hexdigest()[:20]
    if not all((folder / f"{m}.py").is_file() for m in MODULES):
        _compile(PROTO, folder)
    return folder


def _load(folder: Path, name: str) -> ModuleType:
    # The generated service module imports the message module by its top-level name.
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, folder / f"{name}.py")
    if spec is None or spec.loader is None:
        raise TestbedError(f"cannot load {folder / name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception:
        del sys.modules[name]
        raise
    return module


@cache
def _modules() -> tuple[ModuleType, ModuleType]:
    folder = stub_dir()
    try:
        return _load(folder, MODULES[0]), _load(folder, MODULES[1])
    except ImportError as exc:
        raise TestbedError(
            f"the runtime's generated modules in {folder} need grpcio and protobuf ({exc}); "
            "both are pinned in requirements.lock"
        ) from None


def pb() -> Any:
    """The message classes (JobSpec, Event, ...)."""
    return _modules()[0]


def rpc() -> Any:
    """The service classes (NodeAgentStub, NodeAgentServicer, add_NodeAgentServicer_to_server)."""
    return _modules()[1]


def sources() -> dict[str, bytes]:
    """File name -> bytes of every generated module (what a node needs to speak the protocol)."""
    folder = stub_dir()
    return {f"{m}.py": (folder / f"{m}.py").read_bytes() for m in MODULES}


# Run by the node's Python: write each file via a temporary name, then print the folder.
_WRITER = r"""
import base64, os, sys
folder = sys.argv[1]
os.makedirs(folder, exist_ok=True)
for i in range(2, len(sys.argv), 2):
    path = os.path.join(folder, sys.argv[i])
    tmp = path + ".%d.tmp" % os.getpid()
    with open(tmp, "wb") as f:
        f.write(base64.b64decode(sys.argv[i + 1]))
    os.replace(tmp, path)
print(folder)
"""


def install_argv(python: str, folder: str) -> list[str]:
    """A command that writes the generated modules into `folder` on a node.

    A process, not a file copy, so it reaches nodes through any launcher (SSH, srun, pods).
    """
    argv = [python, "-c", _WRITER, folder]
    for name, data in sorted(sources().items()):
        argv += [name, base64.b64encode(data).decode()]
    return argv
