"""Create the Ray burst study's virtualenv (Ray, boto3, moto) beside the project's."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir)))
from _log import redirect_stderr
from reprise.testbed.systems.ray_burst.env import make_venv, write_json

redirect_stderr(snakemake)
record = make_venv(
    Path(snakemake.output.record).parent / "venv",
    Path(snakemake.input.lock),
    Path(snakemake.log[0]).with_suffix(".pip.log"),
)
write_json(Path(snakemake.output.record), record)
