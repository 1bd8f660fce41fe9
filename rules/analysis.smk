# Analysis stage: run records -> one table per figure, published numbers beside.


rule figure_table:
    input:
        summaries=get_run_summaries,
        paper=get_paper,
    output:
        # update(): Snakemake keeps the previous table and puts it back if this job fails
        update("results/tables/{experiment}.csv"),
    log:
        "results/logs/tables/{experiment}.log",
    conda:
        "../envs/figures.yaml"
    params:
        pending=get_pending_policies,
    script:
        "../scripts/make_table.py"


rule claims:
    input:
        "results/tables/{experiment}.csv",
    output:
        "results/claims/{experiment}.json",
    log:
        "results/logs/claims/{experiment}.log",
    conda:
        "../envs/figures.yaml"
    script:
        "../scripts/make_claims.py"


rule scorecard:
    input:
        tables=get_all_tables,
        claims=get_all_claims,
    output:
        html=report("results/scorecard.html", category="0. Scorecard"),
        csv="results/scorecard.csv",
        # included by the report's front page (report/workflow.rst)
        rst="results/scorecard.rst",
    log:
        "results/logs/scorecard.log",
    conda:
        "../envs/figures.yaml"
    script:
        "../scripts/make_scorecard.py"


rule throughput_table:
    input:
        measurements=expand(
            "results/runs/testbed/throughput_profile/{cluster}/measurements.csv",
            cluster=get_profile_cluster(),
        ),
        summary=expand(
            "results/runs/testbed/throughput_profile/{cluster}/summary.json",
            cluster=get_profile_cluster(),
        ),
    output:
        table=update("results/tables/throughput_profile.csv"),
        times=update("results/tables/throughput_profile_time.csv"),
    log:
        "results/logs/tables/throughput_profile.log",
    conda:
        "../envs/figures.yaml"
    script:
        "../scripts/make_throughput_table.py"
