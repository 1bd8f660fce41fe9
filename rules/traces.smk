# Traces stage: every trace validated and written in one canonical schema.


rule normalise_trace:
    input:
        trace=get_trace_source,
        profiles=get_profile_files,
    output:
        "results/traces/{trace}.csv",
    log:
        "results/logs/traces/{trace}.log",
    conda:
        "../envs/simulate.yaml"
    script:
        "../scripts/normalise_trace.py"
