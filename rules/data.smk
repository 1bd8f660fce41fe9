# Data stage: pinned upstream files (sha256-checked), from an offline mirror or the pinned URL.


rule fetch_upstream:
    output:
        "resources/upstream/{path}",
    log:
        "results/logs/data/{path}.log",
    wildcard_constraints:
        path=r"(ElasticFlow-artifact|elasticflow-traces)/.+",
    priority: INPUT_PRIORITY
    conda:
        "../envs/data.yaml"
    params:
        entry=get_upstream_entry,
        mirrors=get_mirrors,
        allow_download=config["data"].get("allow_download", True),
    script:
        "../scripts/fetch_upstream.py"


rule extract_itp_traces:
    input:
        "resources/upstream/elasticflow-traces/data/elasticflow-traces.tar.gz",
    output:
        expand(
            "resources/traces/itp/{name}.csv",
            name=[f"cluster{i:02d}" for i in range(1, 11)] + ["195job"],
        ),
    log:
        "results/logs/data/extract_itp_traces.log",
    priority: INPUT_PRIORITY
    conda:
        "../envs/data.yaml"
    script:
        "../scripts/extract_traces.py"
