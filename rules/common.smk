# Config validation, input functions (get_*) and wildcard constraints shared by every stage.
import os
import re
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

if sys.version_info < (3, 11):
    raise WorkflowError(
        f"Reprise needs Python >= 3.11; this Snakemake runs on {sys.version.split()[0]}. "
        "Create the virtualenv with python3.11 or newer (README, Quick start)."
    )

from reprise.config import (
    ITP_ARCHIVE,
    UPSTREAM_ROOT,
    check_config,
    check_schema,
    cluster_spec_path,
    load_paper,
    pending_policies,
    policy_data_files,
    profile_files,
    runs_of,
    instance_name,
    split_instance,
    trace_clusters,
    trace_entry,
    trace_source,
)
from reprise.data.clusters import cluster_from_name, load_cluster_spec
from reprise.policies.registry import (
    RUNTIME_MINUTES,
    runtime_minutes,
    simulation_priority,
    switches_of,
)
from reprise.data.fetch import load_catalog, mirror_dirs, verify_installed
from reprise.data.profiles import load_profiles
from reprise.data.traces import load_trace
from reprise.data.validate import check_fits_clusters, check_gpu_counts
from reprise.rate_limit import drop_local_rate_limit
from reprise.runlock import hold_run_lock
from reprise.testbed.systems.adaptdl.trace import FIGURE6A_CLUSTER

SCHEMA = f"{workflow.basedir}/config/schema/config.schema.yaml"
check_schema(config, SCHEMA)
validate(config, schema="../config/schema/config.schema.yaml")
CATALOG = load_catalog(config["data"]["catalog"])
check_config(config, CATALOG)
# copies are verified at every start, not only when fetched: an edited one stops the run here
verify_installed(CATALOG, Path(UPSTREAM_ROOT))


onstart:
    # only a run that executes jobs gets here (not -n, --lint, --unlock, nor the Snakemake
    # that a cluster executor starts inside a job: those pass --no-hooks); --nolock opts out
    if workflow.execution_settings.lock:
        hold_run_lock()
    # local runs need no job rate limit, whose re-check timers pile up (reprise/rate_limit.py)
    drop_local_rate_limit(workflow)


wildcard_constraints:
    experiment="|".join(re.escape(name) for name in config["experiments"]),
    trace=r"[A-Za-z0-9_.\-]+",
    cluster=r"n[0-9]+g[0-9]+",
    policy=r"[a-z0-9\-]+(\.s[0-9]+)?",
    inventory=r"[A-Za-z0-9_.\-]+",


def get_cluster_spec_of(cluster):
    return f"{UPSTREAM_ROOT}/{cluster_spec_path(cluster)}"


def upstream_root_with(files):
    """The first of resources/upstream and the mirrors that holds all `files` (paths below
    resources/upstream), or None: a half-fetched profile folder must not pass for a whole one."""
    for root in [Path(UPSTREAM_ROOT), *mirror_dirs(config["data"].get("mirrors", []))]:
        if all((root / Path(f).relative_to(UPSTREAM_ROOT)).is_file() for f in files):
            return root
    return None


def validate_local_traces():
    """Local traces are checked at start against the profiles and every cluster they run on,
    so a bad row fails before any output is touched. Upstream traces are checked the same
    way by prepare_trace, before its output is accepted."""
    for name, trace in config["traces"].items():
        if "file" not in trace:
            continue
        files = profile_files(CATALOG, trace["gpu_type"])
        root = upstream_root_with(files)
        profile_dir = Path(files[0]).parent.relative_to(UPSTREAM_ROOT)
        profiles = load_profiles(root / profile_dir) if root else None
        jobs = load_trace(trace["file"], profiles)
        if profiles is not None:
            check_gpu_counts(trace["file"], jobs, profiles)
        clusters = []
        for key, cluster in trace_clusters(config, name):
            spec = get_cluster_spec_of(cluster)
            root = upstream_root_with([spec])
            shape = (
                load_cluster_spec(root / cluster_spec_path(cluster))
                if root
                else cluster_from_name(cluster)
            )
            clusters.append((f"{key}.cluster", shape))
        check_fits_clusters(trace["file"], jobs, clusters)


validate_local_traces()


def get_trace_source(wildcards):
    source = trace_source(config, wildcards.trace)
    if source is None:
        return []
    # a user's own trace file is read where it is, never from the default storage (Kubernetes)
    return [local(source)] if "file" in trace_entry(config, wildcards.trace) else [source]


def get_trace_upstream(wildcards):
    """The files a trace instance was prepared from (their hashes go into summary.json)."""
    entry = trace_entry(config, wildcards.trace)
    if "itp" in entry:
        return [f"{UPSTREAM_ROOT}/{ITP_ARCHIVE}", *get_trace_source(wildcards)]
    return get_trace_source(wildcards)


def get_trace_clusters(wildcards):
    """Specs of every cluster the trace runs on: prepare_trace checks that each job fits."""
    return sorted(
        {get_cluster_spec_of(cluster) for _, cluster in trace_clusters(config, wildcards.trace)}
    )


def get_trace_spec(wildcards):
    return dict(trace_entry(config, wildcards.trace))


def get_trace_seed(wildcards):
    return split_instance(wildcards.trace)[1]


def get_trace_gpu_type(wildcards):
    return trace_entry(config, wildcards.trace)["gpu_type"]


def get_profile_files(wildcards):
    return profile_files(CATALOG, get_trace_gpu_type(wildcards))


def get_policy_data(wildcards):
    return policy_data_files(CATALOG, wildcards.policy)


def get_cluster_spec(wildcards):
    return get_cluster_spec_of(wildcards.cluster)


def get_upstream_entry(wildcards):
    return CATALOG[wildcards.path]


def get_mirrors(wildcards):
    return list(config["data"].get("mirrors", []))


def get_mem_mb(wildcards, attempt):
    """Memory of a simulation job in MB: 2000, times the attempt, so a retry asks for more."""
    return 2000 * attempt


def get_runtime(wildcards):
    """Minutes a simulation job may run: the policy's registry entry says its runtime class."""
    return runtime_minutes(split_instance(wildcards.policy)[0])


INPUT_PRIORITY = 1000
"""Priority of the jobs that make simulations' inputs (fetches, traces): Snakemake does not pass
a job's priority on to the jobs it waits for, so without it a fetch a Pollux seed needs waits
behind every ready simulation of a higher priority than its own 0."""


def get_priority(wildcards):
    """Simulations of the long runtime class start first, then those on larger clusters: the
    longest jobs of a run then overlap the many short ones instead of setting its end."""
    gpus = cluster_from_name(wildcards.cluster).num_gpus
    return simulation_priority(split_instance(wildcards.policy)[0], gpus)


def get_long_sim(wildcards):
    """1 for a simulation of the long runtime class (Pollux's seeds), else 0; the default
    profile allows one at a time, so they never take every core of a small machine."""
    minutes = runtime_minutes(split_instance(wildcards.policy)[0])
    return int(minutes >= RUNTIME_MINUTES["long"])


def get_slot(wildcards):
    return config["experiments"][wildcards.experiment]["slot"]


def get_simulator_switches(wildcards):
    """Only the switches the run's policy reads: flipping one reruns only that policy's jobs."""
    return switches_of(split_instance(wildcards.policy)[0], dict(config.get("simulator", {})))


def get_run_summaries(wildcards):
    return [f"{run.directory}/summary.json" for run in runs_of(config, wildcards.experiment)]


def get_run_events(wildcards):
    return [f"{run.directory}/events.csv" for run in runs_of(config, wildcards.experiment)]


def get_plot_kind(wildcards):
    return config["experiments"][wildcards.experiment].get("plot", "ratio_bars")


def get_paper(wildcards):
    # part of the workflow's sources: local, also when outputs go to a default storage provider
    return local(config["experiments"][wildcards.experiment]["paper"])


def get_published_curves(wildcards):
    """Upstream logs a figure draws as its published reference (`published_curves`, Figure 10)."""
    paper = load_paper(config["experiments"][wildcards.experiment]["paper"])
    return [f"{UPSTREAM_ROOT}/{path}" for path in paper.get("published_curves", {}).values()]


def get_pending_policies(wildcards):
    return pending_policies(config["experiments"][wildcards.experiment])


def get_note_policies(wildcards):
    return config["experiments"][wildcards.experiment].get("note_policies", [])


def get_figure_title(wildcards):
    return config["experiments"][wildcards.experiment].get("title", wildcards.experiment)


def get_figure_targets(experiment):
    """A figure's outputs and its run records: listing the runs as targets too makes a deleted
    run directory be rebuilt (Snakemake skips missing intermediates whose consumers are fresh)."""
    runs = [f"{run.directory}/summary.json" for run in runs_of(config, experiment)]
    return [
        *runs,
        f"results/tables/{experiment}.csv",
        f"results/claims/{experiment}.json",
        f"results/figures/{experiment}.pdf",
        f"results/figures/{experiment}.png",
    ]


def get_all_tables(wildcards):
    return [f"results/tables/{exp}.csv" for exp in config["experiments"]]


def get_all_claims(wildcards):
    return [f"results/claims/{exp}.json" for exp in config["experiments"]]


def get_all_targets():
    figures = [t for exp in config["experiments"] for t in get_figure_targets(exp)]
    return [*figures, "results/scorecard.html"]


# --- testbed (provision and testbed stages) ---------------------------------------------


def testbed_settings():
    return config.get("testbed", {})


def get_testbed_clusters():
    return list(testbed_settings().get("clusters", ["local-docker"]))


def get_profile_models():
    return list(testbed_settings().get("throughput_profile", {}).get("models", []))


def get_profile_cluster():
    return testbed_settings().get("throughput_profile", {}).get("cluster", "local-docker")


def get_inventory(wildcards):
    path = f"config/clusters/{wildcards.inventory}.yaml"
    if not os.path.exists(path):
        known = sorted(p.stem for p in Path("config/clusters").glob("*.yaml"))
        raise ValueError(
            f"no cluster inventory {path} (testbed.clusters or testbed.throughput_profile.cluster "
            f"in the config); clusters: {', '.join(known)}"
        )
    return path


def get_node_image_record(wildcards):
    """Docker and Kubernetes nodes run the project's image; SSH and Slurm nodes bring their own."""
    from reprise.testbed.inventory import load_inventory

    inventory = load_inventory(get_inventory(wildcards))
    if inventory.provider in ("docker", "kubernetes"):
        return ["results/testbeds/images/node.json"]
    return []


def get_testbed_nodes(wildcards):
    """Slurm nodes a testbed job asks for (`resources: nodes`): the inventory's `slurm.nodes`
    (or its listed hosts, if more); one elsewhere."""
    from reprise.testbed.inventory import load_inventory

    inventory = load_inventory(get_inventory(wildcards))
    if inventory.provider != "slurm" or inventory.slurm is None:
        return 1
    return max(inventory.slurm.nodes, len(inventory.hosts))


def get_testbed_gres(wildcards):
    """GPUs per node a testbed job asks Slurm for (`gpu:8`) where the inventory has GPUs;
    none elsewhere."""
    from reprise.testbed.inventory import load_inventory

    inventory = load_inventory(get_inventory(wildcards))
    gpus = inventory.slurm.gpus_per_node if inventory.slurm is not None else 0
    return f"gpu:{gpus}" if inventory.provider == "slurm" and gpus else ""


def get_node_sources():
    """The library code the node image carries (what its processes run)."""
    library = Path("workflow/reprise")
    files = [library / name for name in ("__init__.py", "atomic.py", "errors.py", "lifetime.py")]
    files += sorted((library / "testbed").rglob("*.py"))
    return [str(f) for f in files if f.is_file()]


def get_image_settings():
    image = testbed_settings().get("image", {})
    return {
        "base": image.get("base", "debian-bootstrap"),
        "tag": image.get("tag", "reprise-node:latest"),
    }


def get_throughput_settings(wildcards):
    return dict(testbed_settings().get("throughput_profile", {}))


def get_testbed_targets():
    return [
        "results/tables/throughput_profile.csv",
        "results/figures/throughput_profile.pdf",
        "results/figures/throughput_profile.png",
    ]


# ---- FedScale (rules/testbed.smk, issue 14) ----
def get_fedscale_settings():
    return dict(testbed_settings().get("fedscale", {}))


def get_fedscale_runs():
    from reprise.testbed.systems.fedscale.job import settings_matrix

    return [s.run_name for s in settings_matrix(get_fedscale_settings())]


def get_fedscale_images(wildcards):
    """Container runs need the aggregator and executor images; local processes do not."""
    if wildcards.run.split("-")[0] in ("docker", "swarm"):
        return ["results/testbeds/images/fedscale.json"]
    return []


def get_fedscale_tolerance():
    return float(get_fedscale_settings().get("tolerance", 0.1))


# ---- Ray burst study (issue 15) ----


def get_ray_burst_block():
    return dict(testbed_settings().get("ray_burst", {}))


def get_ray_burst_settings():
    from reprise.testbed.systems.ray_burst.settings import parse_settings

    return parse_settings(get_ray_burst_block())


def get_ray_burst_runs():
    s = get_ray_burst_settings()
    return [
        f"results/runs/testbed/ray_burst/{s.scale}/{t.name}/{w}/{d}/{k}/rep{r}/summary.json"
        for t in s.topologies
        for w in s.workloads
        for d in s.data_cases
        for k in s.schedulers
        for r in range(s.repetitions)
    ]


def get_ray_burst_point_files(name):
    """`name` in every point folder of one topology's sweep ({scale} and {topology} kept)."""
    s = get_ray_burst_settings()
    return [
        f"results/runs/testbed/ray_burst/{{scale}}/{{topology}}/{w}/{d}/{k}/rep{r}/{name}"
        for w in s.workloads
        for d in s.data_cases
        for k in s.schedulers
        for r in range(s.repetitions)
    ]


def get_ray_burst_inventory(wildcards):
    return f"config/clusters/{get_ray_burst_settings().cluster}.yaml"


def get_ray_burst_image(wildcards):
    from reprise.testbed.inventory import load_inventory

    inventory = load_inventory(get_ray_burst_inventory(wildcards))
    return ["results/testbeds/images/ray-node.json"] if inventory.provider == "docker" else []


def get_roleml_settings():
    return dict(testbed_settings().get("roleml", {}))


def get_roleml_topology():
    return get_roleml_settings().get("topology", "paper")


def get_roleml_runs():
    """The summaries of the configured repeated runs (rep0, rep1, ...), the table's inputs."""
    topology = get_roleml_topology()
    reps = int(get_roleml_settings().get("repetitions", 3))
    return [
        f"results/runs/testbed/roleml_offload/{topology}/rep{rep}/summary.json"
        for rep in range(reps)
    ]


def get_roleml_run_settings(wildcards):
    """A repetition's settings: its seed is the configured one plus the repetition's index."""
    settings = get_roleml_settings()
    settings["seed"] = int(settings.get("seed", 0)) + int(wildcards.rep)
    return settings


def get_roleml_criu(wildcards):
    """The pipeline's CRIU, except for actors on inventory hosts (CRIU is checked there)."""
    if get_roleml_settings().get("runtime", "docker") == "hosts":
        return []
    return ["results/roleml/criu/bin/criu"]


def get_roleml_inventory(wildcards):
    """Actors on inventory hosts: the inventory file, so that editing it reruns the runs."""
    settings = get_roleml_settings()
    if settings.get("runtime", "docker") != "hosts":
        return []
    return [str((settings.get("hosts") or {}).get("inventory", ""))]


def get_roleml_image(wildcards):
    """Actors in containers need the role image; actors as host processes do not."""
    if get_roleml_settings().get("runtime", "docker") == "docker":
        return ["results/testbeds/images/roleml.json"]
    return []


# ---- Figure 12(b), the elastic runtime's overhead (rules/testbed.smk, issue 18) ----
def get_figure12b_settings():
    return dict(testbed_settings().get("figure12b", {}))


def get_figure12b_cluster():
    return get_figure12b_settings().get("cluster", "local-docker")


# ---- ElasticFlow's scheduler on the testbed (rules/testbed.smk, issue 18) ----
SCHEDULED = ("functionality", "figure6a", "figure6a_cpu", "figure6b")
"""testbed.<name> blocks run by schedule_run (functionality, Figures 6 and 7)."""


def get_scheduled(name):
    block = testbed_settings().get(name)
    if block is None:
        raise WorkflowError(f"no testbed.{name} block in the config (config/config.yaml)")
    return dict(block)


def get_schedule_settings(wildcards):
    return get_scheduled(wildcards.schedule)


def get_schedule_cluster(name):
    return get_scheduled(name)["cluster"]


def get_schedule_spec(wildcards):
    return get_cluster_spec_of(get_scheduled(wildcards.schedule)["cluster_spec"])


def get_schedule_profiles(wildcards):
    return profile_files(CATALOG, get_scheduled(wildcards.schedule).get("gpu_type", "A100"))


def get_schedule_trace(wildcards):
    """A one-model trace generated for this experiment, or a generated trace of `traces:`
    (its first deadline seed, prepared by the traces stage)."""
    trace = get_scheduled(wildcards.schedule)["trace"]
    if isinstance(trace, dict):
        return f"results/{wildcards.schedule}/trace.csv"
    seeds = config["traces"][trace].get("deadline_seeds", [None])
    return f"results/traces/{instance_name(trace, seeds[0])}.csv"


def get_schedule_nodes(wildcards):
    """Slurm nodes the run asks for: as many as its cluster spec has (one elsewhere)."""
    from reprise.testbed.inventory import load_inventory

    inventory = load_inventory(get_inventory(wildcards))
    if inventory.provider != "slurm":
        return 1
    return cluster_from_name(get_scheduled(wildcards.schedule)["cluster_spec"]).num_nodes


def get_schedule_record(wildcards):
    name = wildcards.schedule
    return f"results/runs/testbed/{name}/{get_schedule_cluster(name)}/summary.json"


# ---- Pollux on a real testbed (rules/testbed.smk, issue 19) ----
POLLUX_SCALES = ["laptop", "paper"]


def get_pollux_testbed_settings():
    return dict(testbed_settings().get("pollux_testbed", {}))


def get_pollux_testbed_cluster():
    return get_pollux_testbed_settings().get("cluster", "local-adaptdl")


def get_pollux_testbed_inventory():
    return f"config/clusters/{get_pollux_testbed_cluster()}.yaml"


def get_pollux_testbed_image():
    """The node image with AdaptDL where the nodes are Docker containers; hosts bring their own."""
    from reprise.testbed.inventory import load_inventory

    inventory = load_inventory(get_pollux_testbed_inventory())
    return ["results/testbeds/images/adaptdl.json"] if inventory.provider == "docker" else []


def pollux_testbed_measures_rates():
    return get_pollux_testbed_settings().get("samples_per_s") == "measure"


def get_pollux_testbed_rates(wildcards):
    """The rates measured on the nodes where `samples_per_s: measure` (the laptop trace's work
    and the run's record); nothing where the config fixes them."""
    if pollux_testbed_measures_rates() and getattr(wildcards, "scale", "laptop") == "laptop":
        return ["results/pollux_testbed/rates.json"]
    return []


def get_pollux_testbed_profiles():
    return profile_files(CATALOG, "A100")


def get_pollux_data():
    return policy_data_files(CATALOG, "pollux")


def get_pollux_testbed_sim_cluster(wildcards):
    """The paper's cluster for the paper's trace, else the testbed's shape."""
    if wildcards.scale == "paper":
        return FIGURE6A_CLUSTER
    return get_pollux_testbed_settings().get("simulated_cluster", "n2g2")
