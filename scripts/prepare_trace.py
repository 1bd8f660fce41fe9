"""Write one trace in the canonical schema: validate an existing one, or generate it seeded."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir)))
from _log import redirect_stderr
from reprise.config import split_instance, trace_clusters
from reprise.data.clusters import load_cluster_spec
from reprise.data.fetch import load_catalog, verify_used
from reprise.data.generate import generator_params, write_generated_trace
from reprise.data.normalise import normalise_trace
from reprise.data.profiles import load_profiles

redirect_stderr(snakemake)
catalog = load_catalog(snakemake.config["data"]["catalog"])
specs = {Path(p).stem: Path(p) for p in snakemake.input.clusters}
verify_used([*map(Path, snakemake.input), *specs.values()], catalog)
clusters = [
    (f"{key}.cluster", load_cluster_spec(specs[name]))
    for key, name in trace_clusters(snakemake.config, snakemake.wildcards.trace)
]
profiles = load_profiles(Path(snakemake.input.profiles[0]).parent)
out = Path(snakemake.output[0])
spec = snakemake.params.spec
if "generated" in spec:
    params = generator_params(spec["generated"], deadline_seed=snakemake.params.seed)
    key = f"traces.{split_instance(snakemake.wildcards.trace)[0]}.generated"
    count = write_generated_trace(params, profiles, out, clusters, key)
    print(f"generated {count} jobs with {params}", file=sys.stderr)
else:
    count = normalise_trace(Path(snakemake.input.source[0]), out, profiles, clusters)
    print(f"{snakemake.input.source[0]}: {count} jobs", file=sys.stderr)
