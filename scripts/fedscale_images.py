"""Build FedScale's aggregator and executor images FROM the node image; record their ids."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir)))
from _log import redirect_stderr
from reprise.lifetime import die_with_parent
from reprise.testbed.systems.fedscale.images import build_fedscale_images

redirect_stderr(snakemake)
die_with_parent()
record = Path(snakemake.output.record)
result = build_fedscale_images(
    node_record=Path(snakemake.input.node),
    lock=Path(snakemake.input.lock),
    workdir=record.parent / "fedscale-build",
    log_path=record.parent / "fedscale-build.log",
)
record.write_text(json.dumps(result, indent=2) + "\n")
print(f"FedScale images built in {result['seconds']} s", file=sys.stderr)
