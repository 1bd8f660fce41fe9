# Figures stage: matplotlib figures from the tables.


rule ratio_figure:
    input:
        "results/tables/{experiment}.csv",
    output:
        pdf=report(
            "results/figures/{experiment}.pdf",
            category="Figures",
            caption="../report/ratio_figure.rst",
        ),
        png=report(
            "results/figures/{experiment}.png",
            category="Figures",
            caption="../report/ratio_figure.rst",
        ),
    log:
        "results/logs/figures/{experiment}.log",
    conda:
        "../envs/figures.yaml"
    params:
        title=get_figure_title,
    script:
        "../scripts/plot_ratio_figure.py"
