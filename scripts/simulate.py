"""Simulate one policy on one trace and cluster; write the run record."""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir)))
from _log import redirect_stderr
from reprise.config import data_root_of, split_instance
from reprise.data.fetch import load_catalog
from reprise.faults import inject as inject_faults
from reprise.lifetime import die_with_parent
from reprise.sim.options import SimOptions
from reprise.simulate import run_simulation

redirect_stderr(snakemake)
die_with_parent()  # a killed Snakemake takes this simulation with it, no orphan writes later
inject_faults(snakemake)  # test-only faults chosen by REPRISE_FAIL_RUN etc.; none by default
w = snakemake.wildcards
switches = snakemake.params.switches
policy, seed = split_instance(w.policy)
trace_name, trace_seed = split_instance(w.trace)
options = SimOptions(
    slot=int(snakemake.params.slot),
    gpu_type=snakemake.params.gpu_type,
    **{name: bool(value) for name, value in switches.items()},
    show_progress=os.environ.get("REPRISE_PROGRESS", "1") != "0",
    data_root=data_root_of(w.policy, list(snakemake.input.policy_data)),
    seed=seed or 0,
)
summary = run_simulation(
    trace=Path(snakemake.input.trace),
    cluster_spec=Path(snakemake.input.cluster_spec),
    profile_dir=Path(snakemake.input.profiles[0]).parent,
    policy=policy,
    options=options,
    outdir=Path(snakemake.output.summary).parent,
    experiment=w.experiment,
    trace_name=trace_name,
    trace_seed=trace_seed,
    policy_seed=seed,
    policy_data=[Path(p) for p in snakemake.input.policy_data],
    trace_sources=[Path(p) for p in snakemake.input.trace_upstream],
    catalog=load_catalog(snakemake.config["data"]["catalog"]),
)
m = summary["metrics"]
print(
    f"{w.policy} on {w.trace}/{w.cluster}: {m['accepted']}/{m['accepted'] + m['declined']} "
    f"= {m['ratio_published_rule']:.4f}",
    file=sys.stderr,
)
