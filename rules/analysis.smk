# Analysis stage: run records -> one table per figure, published numbers beside.


rule figure_table:
    input:
        summaries=get_run_summaries,
        paper=get_paper,
    output:
        "results/tables/{experiment}.csv",
    log:
        "results/logs/tables/{experiment}.log",
    conda:
        "../envs/figures.yaml"
    params:
        pending=get_pending_policies,
    script:
        "../scripts/make_table.py"


rule metric_claims:
    input:
        "results/tables/{experiment}.csv",
    output:
        "results/claims/{experiment}_metric_agreement.json",
    log:
        "results/logs/claims/{experiment}.log",
    conda:
        "../envs/figures.yaml"
    script:
        "../scripts/make_claims.py"
