"""Build CRIU (>= 4.2) into the pipeline's path with build-criu.sh, or take a prebuilt one."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir)))
from _log import redirect_stderr
from reprise.testbed.systems.roleml.criu import require_criu

redirect_stderr(snakemake)
binary = Path(snakemake.output.binary)
# a binary built before (REPRISE_CRIU_PREBUILT, e.g. by an earlier checkout) is checked and reused
prebuilt = os.environ.get("REPRISE_CRIU_PREBUILT", "")
if prebuilt:
    require_criu(prebuilt)
    binary.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(prebuilt, binary)
    source = f"prebuilt {prebuilt}"
else:
    work = Path(snakemake.params.work)
    subprocess.run(
        ["bash", snakemake.input.script, str(work), str(binary.parent), snakemake.params.suite],
        check=True,
        stdout=sys.stderr,
        stderr=sys.stderr,
    )
    source = f"Debian {snakemake.params.suite} source, built by {snakemake.input.script}"
version = require_criu(binary)
Path(snakemake.output.record).write_text(
    json.dumps({"version": ".".join(map(str, version)), "source": source}, indent=1) + "\n"
)
