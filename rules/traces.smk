# Traces stage: every trace validated and written in one canonical schema (or generated, seeded).


rule prepare_trace:
    input:
        source=get_trace_source,
        profiles=get_profile_files,
        clusters=get_trace_clusters,
    output:
        "results/traces/{trace}.csv",
    log:
        "results/logs/traces/{trace}.log",
    priority: INPUT_PRIORITY
    conda:
        "../envs/simulate.yaml"
    params:
        spec=get_trace_spec,
        seed=get_trace_seed,
    script:
        "../scripts/prepare_trace.py"
