"""CIFAR-10-format batches for the E-Tree clients (digits), or a check of the real CIFAR-10."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir)))
from _log import redirect_stderr
from reprise.testbed.systems.roleml.data import load_split, make_digit_batches

redirect_stderr(snakemake)
params = snakemake.params
out = Path(snakemake.output.summary)
if params.data_path:
    root = Path(params.data_path).resolve()
    images, _ = load_split(root, "test")  # names the missing or malformed batch
    summary = {"source": str(root), "test": len(images)}
    out.write_text(json.dumps(summary, indent=1) + "\n")
else:
    make_digit_batches(out.parent, float(params.test_fraction), int(params.seed))
