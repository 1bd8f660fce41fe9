"""Tidy throughput table and per-model profiling times from the testbed run records."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir)))
from _log import redirect_stderr
from reprise.analysis.throughput import profiling_times, throughput_table

redirect_stderr(snakemake)
records = [Path(p).parent for p in snakemake.input.summary]
throughput_table(records).to_csv(snakemake.output.table, index=False, lineterminator="\n")
profiling_times(records).to_csv(snakemake.output.times, index=False, lineterminator="\n")
