"""One RoleML offloading run: E-Tree actors on cgroup nodes, commanded and automatic offloads."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir)))
from _log import redirect_stderr
from reprise.lifetime import die_with_parent
from reprise.testbed.systems.roleml.study import RoleImage, run_offload_study

redirect_stderr(snakemake)
# a killed Snakemake sends SIGTERM here: actors, stress and node cgroups are removed
die_with_parent()
settings = snakemake.params.settings
data = json.loads(Path(snakemake.input.data).read_text())
data_dir = Path(data["source"]) if settings.get("data_path") else Path(snakemake.input.data).parent
image = None
if snakemake.input.image:  # the docker runtime's role image record
    record = json.loads(Path(snakemake.input.image[0]).read_text())
    image = RoleImage(
        record["image_id"], record["tag"], Path(snakemake.params.docker_root).resolve()
    )
# the runtimes on this host take the pipeline's CRIU; `hosts` checks CRIU on each host instead
criu = snakemake.input.criu
criu = criu if isinstance(criu, str) else (criu[0] if criu else "")
summary = run_offload_study(
    settings,
    data_dir.resolve(),
    str(Path(criu).resolve()) if criu else "",
    Path(snakemake.output.summary).parent.resolve(),
    image=image,
)
print(json.dumps(summary), file=sys.stderr)
