"""Create AdaptDL's venv (adaptdl, setuptools 81) beside the project's and write its record."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir)))
from _log import redirect_stderr
from reprise.atomic import write_text_atomic
from reprise.testbed.systems.adaptdl.env import make_venv

redirect_stderr(snakemake)
record = make_venv(
    Path(snakemake.output.record).parent / "venv",
    Path(snakemake.input.lock),
    Path(snakemake.log[0]).with_suffix(".pip.log"),
)
write_text_atomic(Path(snakemake.output.record), json.dumps(record, indent=2) + "\n")
