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
