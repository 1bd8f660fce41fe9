"""Build the FEMNIST-format digits (or check the user's data_path) and record where the data is."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir)))
from _log import redirect_stderr
from reprise.testbed.systems.fedscale.dataset import DigitsSpec, build_digits, check_data_path

redirect_stderr(snakemake)
block = snakemake.params.settings
record = Path(snakemake.output.record)
if block.get("data_path"):
    root = Path(block["data_path"]).expanduser().resolve()
    manifest = {"source": "data_path", "path": str(root)}
else:
    root = Path(snakemake.params.digits_dir).resolve()
    spec = DigitsSpec(
        **{
            k: block.get("data", {})[k]
            for k in ("clients", "seed", "alpha")
            if k in block.get("data", {})
        }
    )
    manifest = build_digits(root, spec) | {"path": str(root)}
summary = check_data_path(root)
manifest |= {
    "clients_found": summary.clients,
    "train_samples": summary.train_samples,
    "test_samples": summary.test_samples,
    "classes": summary.classes,
}
record.write_text(json.dumps(manifest, indent=2) + "\n")
print(
    f"FedScale data {root}: {summary.clients} clients, {summary.train_samples} training samples",
    file=sys.stderr,
)
