"""Bring a cluster up, probe it, measure its links, tear it down; write nodes.json."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir)))
from _log import redirect_stderr
from reprise.lifetime import die_with_parent
from reprise.testbed.provisioning import provision_cluster

redirect_stderr(snakemake)
# a killed Snakemake sends SIGTERM here: the run tears its nodes down instead of going on
die_with_parent()
out = Path(snakemake.output.nodes)
record = provision_cluster(
    inventory_path=Path(snakemake.input.inventory),
    state_dir=out.parent / "state",
    out=out,
    progress=lambda msg: print(msg, file=sys.stderr, flush=True),
)
print(f"{len(record['nodes'])} nodes, ready in {record['ready_seconds']} s", file=sys.stderr)
