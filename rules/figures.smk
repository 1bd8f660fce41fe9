# Figures stage: matplotlib figures from the tables (and run events for efficiency curves).


rule figure:
    input:
        table="results/tables/{experiment}.csv",
        events=get_run_events,
        paper=get_paper,
        published=get_published_curves,
    output:
        pdf=report(
            "results/figures/{experiment}.pdf",
            category="Figures",
            caption="../report/figure.rst",
        ),
        png=report(
            "results/figures/{experiment}.png",
            category="Figures",
            caption="../report/figure.rst",
        ),
    log:
        "results/logs/figures/{experiment}.log",
    conda:
        "../envs/figures.yaml"
    params:
        kind=get_plot_kind,
        title=get_figure_title,
        notes=get_note_policies,
    script:
        "../scripts/plot_figure.py"


rule throughput_figure:
    input:
        table="results/tables/throughput_profile.csv",
        times="results/tables/throughput_profile_time.csv",
    output:
        pdf=report(
            "results/figures/throughput_profile.pdf",
            category="Testbed",
            caption="../report/throughput_profile.rst",
        ),
        png=report(
            "results/figures/throughput_profile.png",
            category="Testbed",
            caption="../report/throughput_profile.rst",
        ),
    log:
        "results/logs/figures/throughput_profile.log",
    conda:
        "../envs/figures.yaml"
    script:
        "../scripts/plot_throughput.py"
