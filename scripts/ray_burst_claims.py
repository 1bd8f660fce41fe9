"""results/tables/ray_burst.csv -> results/claims/ray_burst.json (the study's claim checked)."""

import json
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(snakemake.scriptdir)))
from _log import redirect_stderr
from reprise.analysis.ray_burst import burst_claim

redirect_stderr(snakemake)
claim = burst_claim(pd.read_csv(snakemake.input.table))
Path(snakemake.output.claims).write_text(json.dumps(claim, indent=2) + "\n")
