"""The Kubernetes objects of the paper's Pollux run (CRD, scheduler, RBAC, one AdaptDLJob per
job of the Figure 6(a) trace), validated offline and written as one multi-document YAML."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir)))
from _log import redirect_stderr
from reprise.atomic import write_text_atomic
from reprise.data.traces import load_trace
from reprise.testbed.systems.adaptdl.kubernetes import (
    PolluxKubeOptions,
    as_dicts,
    build_objects,
    manifests_yaml,
    validate,
)

redirect_stderr(snakemake)
objects = build_objects(load_trace(Path(snakemake.input.trace)), PolluxKubeOptions())
validate(as_dicts(objects))
write_text_atomic(Path(snakemake.output.manifests), manifests_yaml(objects))
print(f"{len(objects)} objects validated and written", file=sys.stderr)
