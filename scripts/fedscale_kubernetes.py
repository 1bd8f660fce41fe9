"""Write the FedScale runs' Kubernetes objects (validated offline), ready for `kubectl apply -f`."""

import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(snakemake.scriptdir)))
from _log import redirect_stderr
from reprise.testbed.systems.fedscale.job import settings_matrix
from reprise.testbed.systems.fedscale.kubernetes import (
    KubeOptions,
    as_dicts,
    build_objects,
    validate,
)

redirect_stderr(snakemake)
block = snakemake.params.settings
opts = KubeOptions(**block.get("kubernetes", {}))
if block.get("data_path"):
    opts = KubeOptions(**(block.get("kubernetes", {}) | {"host_data_path": block["data_path"]}))
docs = []
for settings in settings_matrix(block | {"deployments": ["kubernetes"]}):
    docs += as_dicts(build_objects(settings, opts))
validate(docs)
Path(snakemake.output.objects).write_text(yaml.safe_dump_all(docs, sort_keys=False))
print(f"{len(docs)} Kubernetes objects valid against API 1.33", file=sys.stderr)
