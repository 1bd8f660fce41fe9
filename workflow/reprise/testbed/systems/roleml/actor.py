"""One RoleML actor process: `python -m reprise.testbed.systems.roleml.actor SPEC.json`."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from pathlib import Path

from reprise.lifetime import die_with_parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("spec", type=Path, help="JSON ActorBootstrapSpec written by the run")
    parser.add_argument(
        "--detachable",
        action="store_true",
        help="do not die with the parent: a CRIU-restored process has another parent",
    )
    args = parser.parse_args(argv)
    if not args.detachable:
        die_with_parent()
    spec = json.loads(args.spec.read_text())
    # torch's intra-op threads would otherwise take every core of a shared host
    import torch

    torch.set_num_threads(1)
    from roleml.core.actor.default.bootstrap import ActorBuilder

    # SIGTERM ends the actor like Ctrl-C: roles are terminated and the gRPC server closed. SIGINT
    # is set explicitly: a pipeline started in the background (`&`, nohup) hands its children
    # SIGINT ignored, and then neither signal (nor the run driver's own SIGINT) would end it. Set
    # before the actor is built: building it already opens its gRPC port, and a run that sees the
    # port open may stop the actor at once.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: signal.raise_signal(signal.SIGINT))
    actor = None
    try:
        builder = ActorBuilder()
        builder.load_config(spec)
        actor = builder.build()
        actor.run()
    except KeyboardInterrupt:
        pass
    finally:
        if actor is not None:
            actor.stop()
        logging.getLogger("roleml").info("actor process exits")
    return 0


if __name__ == "__main__":
    sys.exit(main())
