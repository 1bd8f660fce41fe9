# Simulate stage: one job per (experiment, trace, cluster, policy, seed of a randomised policy).


rule simulate:
    input:
        trace="results/traces/{trace}.csv",
        trace_upstream=get_trace_upstream,
        cluster_spec=get_cluster_spec,
        profiles=get_profile_files,
        policy_data=get_policy_data,
    output:
        jobs="results/runs/sim/{experiment}/{trace}/{cluster}/{policy}/jobs.csv",
        events="results/runs/sim/{experiment}/{trace}/{cluster}/{policy}/events.csv",
        summary="results/runs/sim/{experiment}/{trace}/{cluster}/{policy}/summary.json",
    log:
        "results/logs/sim/{experiment}/{trace}/{cluster}/{policy}.log",
    benchmark:
        "results/benchmarks/sim/{experiment}/{trace}/{cluster}/{policy}.tsv"
    priority: get_priority
    conda:
        "../envs/simulate.yaml"
    resources:
        mem_mb=get_mem_mb,
        runtime=get_runtime,
        long_sim=get_long_sim,
    params:
        slot=get_slot,
        gpu_type=get_trace_gpu_type,
        switches=get_simulator_switches,
    script:
        "../scripts/simulate.py"
