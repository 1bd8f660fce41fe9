"""Write one trace in the canonical schema: validate an existing one, or generate it seeded."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir)))
from _log import redirect_stderr
from reprise.data.generate import generator_params, write_generated_trace
from reprise.data.normalise import normalise_trace
from reprise.data.profiles import load_profiles

redirect_stderr(snakemake)
profiles = load_profiles(Path(snakemake.input.profiles[0]).parent)
out = Path(snakemake.output[0])
spec = snakemake.params.spec
if "generated" in spec:
    params = generator_params(spec["generated"], deadline_seed=snakemake.params.seed)
    count = write_generated_trace(params, profiles, out)
    print(f"generated {count} jobs with {params}", file=sys.stderr)
else:
    count = normalise_trace(Path(snakemake.input.source[0]), out, profiles)
    print(f"{snakemake.input.source[0]}: {count} jobs", file=sys.stderr)
