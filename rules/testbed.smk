# Testbed stage: real processes on provisioned nodes; each job brings its cluster up and down.


rule throughput_profile_run:
    input:
        inventory=get_inventory,
        image=get_node_image_record,
        # a cluster is profiled after it was shown to come up (and one job at a time uses it)
        nodes="results/testbeds/{inventory}/nodes.json",
    output:
        summary="results/runs/testbed/throughput_profile/{inventory}/summary.json",
        jobs="results/runs/testbed/throughput_profile/{inventory}/jobs.csv",
        events="results/runs/testbed/throughput_profile/{inventory}/events.csv",
        measurements="results/runs/testbed/throughput_profile/{inventory}/measurements.csv",
        profiles=expand(
            "results/runs/testbed/throughput_profile/{{inventory}}/profiles/{model}.csv",
            model=get_profile_models(),
        ),
    log:
        "results/logs/testbed/throughput_profile/{inventory}.log",
    benchmark:
        "results/benchmarks/testbed/throughput_profile/{inventory}.tsv"
    conda:
        "../envs/testbed.yaml"
    resources:
        nodes=get_testbed_nodes,
        gres=get_testbed_gres,
    params:
        settings=get_throughput_settings,
    script:
        "../scripts/throughput_profile.py"


# ---- FedScale (issue 14): `snakemake fedscale` ----
rule fedscale_data:
    output:
        record="results/fedscale/data.json",
    log:
        "results/logs/fedscale/data.log",
    conda:
        "../envs/fedscale.yaml"
    params:
        settings=get_fedscale_settings(),
        digits_dir="results/fedscale/digits",
    script:
        "../scripts/fedscale_data.py"


rule fedscale_images:
    input:
        node="results/testbeds/images/node.json",
        dockerfile="workflow/testbed/fedscale/Dockerfile",
        init="workflow/testbed/fedscale/fedscale_init.py",
        lock="requirements.lock",
    output:
        record="results/testbeds/images/fedscale.json",
    log:
        "results/logs/testbeds/fedscale_images.log",
    benchmark:
        "results/benchmarks/testbeds/fedscale_images.tsv"
    conda:
        "../envs/fedscale.yaml"
    script:
        "../scripts/fedscale_images.py"


rule fedscale_run:
    input:
        data="results/fedscale/data.json",
        init="workflow/testbed/fedscale/fedscale_init.py",
        images=get_fedscale_images,
    output:
        summary="results/runs/testbed/fedscale/{run}/summary.json",
        rounds="results/runs/testbed/fedscale/{run}/rounds.csv",
        job="results/runs/testbed/fedscale/{run}/job.json",
    log:
        "results/logs/testbed/fedscale/{run}.log",
    benchmark:
        "results/benchmarks/testbed/fedscale/{run}.tsv"
    conda:
        "../envs/fedscale.yaml"
    # aggregator + executors keep both cores busy: a run alone keeps round times comparable
    threads: 2
    resources:
        # every run uses the same aggregator port: one at a time
        fedscale_port=1,
    params:
        settings=get_fedscale_settings(),
    script:
        "../scripts/fedscale_run.py"


rule fedscale_table:
    input:
        summaries=expand(
            "results/runs/testbed/fedscale/{run}/summary.json", run=get_fedscale_runs()
        ),
        rounds=expand("results/runs/testbed/fedscale/{run}/rounds.csv", run=get_fedscale_runs()),
    output:
        table="results/tables/fedscale.csv",
        runs="results/tables/fedscale_runs.csv",
    log:
        "results/logs/tables/fedscale.log",
    conda:
        "../envs/figures.yaml"
    params:
        tolerance=get_fedscale_tolerance(),
    script:
        "../scripts/fedscale_table.py"


rule fedscale_figure:
    input:
        table="results/tables/fedscale.csv",
        runs="results/tables/fedscale_runs.csv",
    output:
        pdf=report("results/figures/fedscale.pdf", category="Testbed"),
        png=report("results/figures/fedscale.png", category="Testbed"),
    log:
        "results/logs/figures/fedscale.log",
    conda:
        "../envs/figures.yaml"
    script:
        "../scripts/fedscale_figure.py"


rule fedscale_kubernetes:
    output:
        objects="results/testbeds/fedscale/kubernetes.yaml",
    log:
        "results/logs/testbeds/fedscale_kubernetes.log",
    conda:
        "../envs/fedscale.yaml"
    params:
        settings=get_fedscale_settings(),
    script:
        "../scripts/fedscale_kubernetes.py"


# ---- Ray burst study (issue 15): `snakemake ray_burst` ----


rule ray_burst_env:
    input:
        lock="requirements.lock",
    output:
        record="results/envs/ray/env.json",
    log:
        "results/logs/envs/ray.log",
    conda:
        "../envs/ray.yaml"
    script:
        "../scripts/ray_burst_env.py"


rule ray_node_image:
    input:
        node="results/testbeds/images/node.json",
        dockerfile="workflow/testbed/ray/Dockerfile",
        lock="requirements.lock",
        code=sorted(str(p) for p in Path("workflow/reprise/testbed/systems/ray_burst").glob("*.py")),
    output:
        record="results/testbeds/images/ray-node.json",
    log:
        "results/logs/testbeds/ray_node_image.log",
    benchmark:
        "results/benchmarks/testbeds/ray_node_image.tsv"
    conda:
        "../envs/ray.yaml"
    params:
        base=get_image_settings()["tag"],
        tag="reprise-node-ray:latest",
    script:
        "../scripts/ray_burst_image.py"


rule ray_burst_data:
    output:
        manifest="results/ray_burst/{scale}/data/manifest.json",
    log:
        "results/logs/ray_burst/{scale}/data.log",
    conda:
        "../envs/ray.yaml"
    params:
        settings=get_ray_burst_block(),
    script:
        "../scripts/ray_burst_data.py"


# one job per topology: its points share the nodes, the shaped link and one Ray cluster (each
# point starts from empty caches), and each point still gets its own record
rule ray_burst_sweep:
    input:
        inventory=get_ray_burst_inventory,
        image=get_ray_burst_image,
        env="results/envs/ray/env.json",
        manifest="results/ray_burst/{scale}/data/manifest.json",
    output:
        summaries=get_ray_burst_point_files("summary.json"),
        jobs=get_ray_burst_point_files("jobs.csv"),
    log:
        "results/logs/testbed/ray_burst/{scale}/{topology}.log",
    benchmark:
        "results/benchmarks/testbed/ray_burst/{scale}/{topology}.tsv"
    conda:
        "../envs/ray.yaml"
    resources:
        ray_burst_cluster=1,
    params:
        settings=get_ray_burst_block(),
    script:
        "../scripts/ray_burst_run.py"


rule ray_burst_table:
    input:
        summaries=get_ray_burst_runs(),
    output:
        table="results/tables/ray_burst.csv",
    log:
        "results/logs/tables/ray_burst.log",
    conda:
        "../envs/figures.yaml"
    script:
        "../scripts/ray_burst_table.py"


rule ray_burst_claims:
    input:
        table="results/tables/ray_burst.csv",
    output:
        claims="results/claims/ray_burst.json",
    log:
        "results/logs/claims/ray_burst.log",
    conda:
        "../envs/figures.yaml"
    script:
        "../scripts/ray_burst_claims.py"


rule ray_burst_figure:
    input:
        table="results/tables/ray_burst.csv",
    output:
        report("results/figures/ray_burst.pdf", category="Testbed"),
        report("results/figures/ray_burst.png", category="Testbed"),
    log:
        "results/logs/figures/ray_burst.log",
    conda:
        "../envs/figures.yaml"
    script:
        "../scripts/ray_burst_plot.py"


# ---- RoleML role offloading (issue 16): `snakemake roleml_offload` ----
rule roleml_criu:
    input:
        script="workflow/testbed/criu/build-criu.sh",
    output:
        binary="results/roleml/criu/bin/criu",
        record="results/roleml/criu/criu.json",
    log:
        "results/logs/roleml/criu.log",
    benchmark:
        "results/benchmarks/roleml/criu.tsv"
    # first, and alone (make -j uses every core): a missing or old CRIU stops the target
    # before the images are built
    priority: 10
    conda:
        "../envs/roleml.yaml"
    threads: workflow.cores
    params:
        suite=get_roleml_settings().get("criu_suite", "sid"),
        # the source tree stays between runs: a rebuild only recompiles what changed
        work="results/roleml/criu/work",
    script:
        "../scripts/roleml_criu.py"


rule roleml_data:
    output:
        summary="results/roleml/data/summary.json",
    log:
        "results/logs/roleml/data.log",
    conda:
        "../envs/roleml.yaml"
    params:
        data_path=get_roleml_settings().get("data_path") or "",
        test_fraction=get_roleml_settings().get("test_fraction", 0.2),
        seed=get_roleml_settings().get("seed", 0),
    script:
        "../scripts/roleml_data.py"


rule roleml_image:
    input:
        # CRIU is checked first: a missing or old one stops the target before any image work
        criu="results/roleml/criu/criu.json",
        node="results/testbeds/images/node.json",
        dockerfile="workflow/testbed/roleml/Dockerfile",
        lock="requirements.lock",
    output:
        record="results/testbeds/images/roleml.json",
    log:
        "results/logs/testbeds/roleml_image.log",
    benchmark:
        "results/benchmarks/testbeds/roleml_image.tsv"
    conda:
        "../envs/roleml.yaml"
    params:
        tag="reprise-roleml:latest",
    script:
        "../scripts/roleml_image.py"


rule roleml_offload_run:
    input:
        criu=get_roleml_criu,
        data="results/roleml/data/summary.json",
        image=get_roleml_image,
        inventory=get_roleml_inventory,
    output:
        summary="results/runs/testbed/roleml_offload/{topology}/rep{rep}/summary.json",
        offloads="results/runs/testbed/roleml_offload/{topology}/rep{rep}/offloads.csv",
        rounds="results/runs/testbed/roleml_offload/{topology}/rep{rep}/rounds.csv",
        cpu="results/runs/testbed/roleml_offload/{topology}/rep{rep}/cpu.csv",
        decisions="results/runs/testbed/roleml_offload/{topology}/rep{rep}/decisions.csv",
        events="results/runs/testbed/roleml_offload/{topology}/rep{rep}/events.csv",
    log:
        "results/logs/testbed/roleml_offload/{topology}/rep{rep}.log",
    benchmark:
        "results/benchmarks/testbed/roleml_offload/{topology}/rep{rep}.tsv"
    wildcard_constraints:
        rep=r"\d+",
    conda:
        "../envs/roleml.yaml"
    # round times and the Decider's CPU picture are measured: nothing else runs beside it
    threads: workflow.cores
    params:
        settings=get_roleml_run_settings,
        # the experimental dockerd's data root: kept, so the role image is copied in once
        docker_root="results/roleml/docker",
    script:
        "../scripts/roleml_run.py"


rule roleml_offload_table:
    input:
        # every repetition: the table's medians and spreads are over all their offloads
        summaries=get_roleml_runs(),
    output:
        table="results/tables/roleml_offload.csv",
    log:
        "results/logs/tables/roleml_offload.log",
    conda:
        "../envs/figures.yaml"
    script:
        "../scripts/roleml_table.py"


rule roleml_offload_figure:
    input:
        # the timeline shows the first repetition
        summary=get_roleml_runs()[0],
        table="results/tables/roleml_offload.csv",
    output:
        timeline=[
            report("results/figures/roleml_offload.pdf", category="Testbed"),
            report("results/figures/roleml_offload.png", category="Testbed"),
        ],
        phases=[
            report("results/figures/roleml_offload_phases.pdf", category="Testbed"),
            report("results/figures/roleml_offload_phases.png", category="Testbed"),
        ],
    log:
        "results/logs/figures/roleml_offload.log",
    conda:
        "../envs/figures.yaml"
    script:
        "../scripts/roleml_plot.py"


# ---- Figure 12(b), the elastic runtime (issue 18): `snakemake figure12b` ----
rule figure12b_run:
    input:
        inventory=get_inventory,
        image=get_node_image_record,
        # a cluster is measured after it was shown to come up (and one job at a time uses it)
        nodes="results/testbeds/{inventory}/nodes.json",
        proto="workflow/testbed/runtime/elastic_runtime.proto",
    output:
        summary="results/runs/testbed/figure12b/{inventory}/summary.json",
        measurements="results/runs/testbed/figure12b/{inventory}/measurements.csv",
        events="results/runs/testbed/figure12b/{inventory}/events.csv",
    log:
        "results/logs/testbed/figure12b/{inventory}.log",
    benchmark:
        "results/benchmarks/testbed/figure12b/{inventory}.tsv"
    conda:
        "../envs/testbed.yaml"
    # restart times are the measurement: nothing else runs beside it
    threads: workflow.cores
    resources:
        nodes=get_testbed_nodes,
        gres=get_testbed_gres,
    params:
        settings=get_figure12b_settings(),
    script:
        "../scripts/figure12b_run.py"


rule figure12b_table:
    input:
        summary=f"results/runs/testbed/figure12b/{get_figure12b_cluster()}/summary.json",
        paper="config/paper/figure12b.yaml",
    output:
        table="results/tables/figure12b.csv",
    log:
        "results/logs/tables/figure12b.log",
    conda:
        "../envs/testbed.yaml"
    script:
        "../scripts/figure12b_table.py"


rule figure12b_figure:
    input:
        table="results/tables/figure12b.csv",
    output:
        pdf=report("results/figures/figure12b.pdf", category="Testbed"),
        png=report("results/figures/figure12b.png", category="Testbed"),
    log:
        "results/logs/figures/figure12b.log",
    conda:
        "../envs/figures.yaml"
    script:
        "../scripts/figure12b_plot.py"


# -- Pollux on a real testbed (`snakemake pollux_testbed`): AdaptDL jobs re-allocated live by
# Pollux's policy on our controller ------------------------------------------------------------
rule adaptdl_env:
    input:
        lock="requirements.lock",
    output:
        record="results/envs/adaptdl/env.json",
    log:
        "results/logs/envs/adaptdl.log",
    conda:
        "../envs/adaptdl.yaml"
    script:
        "../scripts/adaptdl_env.py"


rule adaptdl_node_image:
    input:
        node="results/testbeds/images/node.json",
        dockerfile="workflow/testbed/adaptdl/Dockerfile",
        lock="requirements.lock",
        # the replicas run this code (Reprise's wheel is the last layer): a change rebuilds it
        sources=get_node_sources(),
    output:
        record="results/testbeds/images/adaptdl.json",
    log:
        "results/logs/testbeds/adaptdl_node_image.log",
    benchmark:
        "results/benchmarks/testbeds/adaptdl_node_image.tsv"
    conda:
        "../envs/adaptdl.yaml"
    params:
        tag="reprise-node-adaptdl:latest",
    script:
        "../scripts/adaptdl_image.py"


# ---- ElasticFlow's scheduler on the testbed (issue 18): `snakemake functionality`, `figure6a`,
# `figure6b`, `figure7`; {schedule} is a testbed.<name> block (rules/common.smk: SCHEDULED) ----
rule schedule_trace:
    input:
        profiles=get_schedule_profiles,
        spec=get_schedule_spec,
    output:
        trace="results/{schedule}/trace.csv",
    log:
        "results/logs/{schedule}/trace.log",
    wildcard_constraints:
        schedule="|".join(SCHEDULED),
    conda:
        "../envs/testbed.yaml"
    params:
        settings=get_schedule_settings,
    script:
        "../scripts/functionality_trace.py"


rule schedule_run:
    input:
        inventory=get_inventory,
        image=get_node_image_record,
        # a cluster is used after it was shown to come up (and one job at a time uses it)
        nodes="results/testbeds/{inventory}/nodes.json",
        proto="workflow/testbed/runtime/elastic_runtime.proto",
        trace=get_schedule_trace,
        spec=get_schedule_spec,
        profiles=get_schedule_profiles,
    output:
        summary="results/runs/testbed/{schedule}/{inventory}/summary.json",
    log:
        "results/logs/testbed/{schedule}/{inventory}.log",
    benchmark:
        "results/benchmarks/testbed/{schedule}/{inventory}.tsv"
    wildcard_constraints:
        schedule="|".join(SCHEDULED),
    conda:
        "../envs/testbed.yaml"
    # restart times are measured and charged: nothing else runs beside it
    threads: workflow.cores
    resources:
        nodes=get_schedule_nodes,
        gres=get_testbed_gres,
    params:
        settings=get_schedule_settings,
    script:
        "../scripts/functionality_run.py"


rule schedule_table:
    input:
        summary=get_schedule_record,
        trace=get_schedule_trace,
        spec=get_schedule_spec,
        profiles=get_schedule_profiles,
        paper="config/paper/{schedule}.yaml",
    output:
        table="results/tables/{schedule}.csv",
        # <overheads: measured|modelled>/<policy>/: the same trace simulated beside the testbed
        sims=directory("results/runs/sim/{schedule}"),
    log:
        "results/logs/tables/{schedule}.log",
    wildcard_constraints:
        schedule="|".join(SCHEDULED),
    conda:
        "../envs/testbed.yaml"
    params:
        settings=get_schedule_settings,
    script:
        "../scripts/functionality_table.py"


# Figure 7 reads Figure 6(b)'s testbed runs
rule figure7_table:
    input:
        summary=f"results/runs/testbed/figure6b/{get_schedule_cluster('figure6b')}/summary.json",
    output:
        table="results/tables/figure7.csv",
    log:
        "results/logs/tables/figure7.log",
    conda:
        "../envs/figures.yaml"
    script:
        "../scripts/figure7_table.py"


rule figure7_figure:
    input:
        table="results/tables/figure7.csv",
        spec=get_cluster_spec_of(get_scheduled("figure6b")["cluster_spec"]),
    output:
        pdf=report("results/figures/figure7.pdf", category="Testbed"),
        png=report("results/figures/figure7.png", category="Testbed"),
    log:
        "results/logs/figures/figure7.log",
    conda:
        "../envs/figures.yaml"
    script:
        "../scripts/figure7_plot.py"


# ---- Figure 12(a), profiling time per model (issue 18): `snakemake figure12a` ----
rule figure12a_table:
    input:
        summary=f"results/runs/testbed/throughput_profile/{get_profile_cluster()}/summary.json",
        measurements=f"results/runs/testbed/throughput_profile/{get_profile_cluster()}/measurements.csv",
        paper="config/paper/figure12a.yaml",
    output:
        table="results/tables/figure12a.csv",
    log:
        "results/logs/tables/figure12a.log",
    conda:
        "../envs/figures.yaml"
    script:
        "../scripts/figure12a_table.py"


rule figure12a_figure:
    input:
        table="results/tables/figure12a.csv",
    output:
        pdf=report("results/figures/figure12a.pdf", category="Testbed"),
        png=report("results/figures/figure12a.png", category="Testbed"),
    log:
        "results/logs/figures/figure12a.log",
    conda:
        "../envs/figures.yaml"
    script:
        "../scripts/figure12a_plot.py"


# ---- Pollux on a real testbed (issue 19): `snakemake pollux_testbed` ----
# `samples_per_s: measure`: each model's CPU rate on the run's nodes, before its trace is made
rule pollux_testbed_rates:
    input:
        profiles=get_pollux_testbed_profiles(),
        inventory=get_pollux_testbed_inventory(),
        image=get_pollux_testbed_image(),
    output:
        rates="results/pollux_testbed/rates.json",
    log:
        "results/logs/pollux_testbed/rates.log",
    benchmark:
        "results/benchmarks/pollux_testbed/rates.tsv"
    conda:
        "../envs/adaptdl.yaml"
    # the replicas are the measurement: nothing else runs beside them
    threads: workflow.cores
    params:
        reduced=get_pollux_testbed_settings().get("reduced", {}),
        controller=get_pollux_testbed_settings().get("controller", {}),
        calibrate=get_pollux_testbed_settings().get("calibrate", {}),
        state_dir=f"results/testbeds/{get_pollux_testbed_cluster()}/pollux-rates-state",
    script:
        "../scripts/pollux_testbed_rates.py"


rule pollux_testbed_trace:
    input:
        profiles=get_pollux_testbed_profiles(),
        rates=get_pollux_testbed_rates,
    output:
        trace="results/traces/pollux_testbed/{scale}.csv",
    log:
        "results/logs/traces/pollux_testbed/{scale}.log",
    wildcard_constraints:
        scale="laptop|paper",
    conda:
        "../envs/simulate.yaml"
    params:
        reduced=get_pollux_testbed_settings().get("reduced", {}),
        samples_per_s=get_pollux_testbed_settings().get("samples_per_s", {}),
    script:
        "../scripts/pollux_testbed_trace.py"


rule pollux_testbed_run:
    input:
        trace="results/traces/pollux_testbed/laptop.csv",
        inventory=get_pollux_testbed_inventory(),
        image=get_pollux_testbed_image(),
        rates=get_pollux_testbed_rates,
    output:
        summary="results/runs/testbed/pollux_testbed/{inventory}/summary.json",
        allocations="results/runs/testbed/pollux_testbed/{inventory}/allocations.csv",
    log:
        "results/logs/testbed/pollux_testbed/{inventory}.log",
    benchmark:
        "results/benchmarks/testbed/pollux_testbed/{inventory}.tsv"
    conda:
        "../envs/adaptdl.yaml"
    # the replicas are the measurement: nothing else runs beside them
    threads: workflow.cores
    params:
        seed=get_pollux_testbed_settings().get("seed", 0),
        controller=get_pollux_testbed_settings().get("controller", {}),
        samples_per_s=get_pollux_testbed_settings().get("samples_per_s", {}),
        state_dir="results/testbeds/{inventory}/pollux-state",
    script:
        "../scripts/pollux_testbed_run.py"


rule pollux_testbed_sim:
    input:
        trace="results/traces/pollux_testbed/{scale}.csv",
        data=get_pollux_data(),
    output:
        summary="results/runs/sim/pollux_testbed/{scale}/summary.json",
    log:
        "results/logs/sim/pollux_testbed/{scale}.log",
    benchmark:
        "results/benchmarks/sim/pollux_testbed/{scale}.tsv"
    wildcard_constraints:
        scale="laptop|paper",
    conda:
        "../envs/simulate.yaml"
    params:
        seed=get_pollux_testbed_settings().get("seed", 0),
        applications=get_pollux_testbed_settings().get("applications", {}),
        cluster=get_pollux_testbed_sim_cluster,
    script:
        "../scripts/pollux_testbed_sim.py"


rule pollux_testbed_table:
    input:
        testbed=f"results/runs/testbed/pollux_testbed/{get_pollux_testbed_cluster()}/summary.json",
        sims=expand("results/runs/sim/pollux_testbed/{scale}/summary.json", scale=POLLUX_SCALES),
        paper="config/paper/pollux_testbed.yaml",
    output:
        table="results/tables/pollux_testbed.csv",
    log:
        "results/logs/tables/pollux_testbed.log",
    conda:
        "../envs/simulate.yaml"
    params:
        scales=POLLUX_SCALES,
    script:
        "../scripts/pollux_testbed_table.py"


# the paper's configuration as AdaptDLJobs for a Kubernetes cluster with GPUs (not run here)
rule pollux_testbed_manifests:
    input:
        trace="results/traces/pollux_testbed/paper.csv",
    output:
        manifests="results/pollux_testbed/kubernetes/manifests.yaml",
    log:
        "results/logs/pollux_testbed/manifests.log",
    conda:
        "../envs/testbed.yaml"
    script:
        "../scripts/pollux_testbed_manifests.py"
