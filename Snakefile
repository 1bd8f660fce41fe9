# Reprise: one-command reproduction of ElasticFlow (ASPLOS'23) and its baselines.
# Targets only; the stages live in rules/*.smk.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/traces.smk"
include: "rules/simulate.smk"
include: "rules/provision.smk"
include: "rules/testbed.smk"
include: "rules/analysis.smk"
include: "rules/figures.smk"


# cheap steps stay on the submitting host under cluster profiles
localrules:
    all,
    figure8a,
    figure8b,
    figure9,
    figure10,
    figure11,
    fetch_upstream,
    extract_itp_traces,
    figure_table,
    claims,
    scorecard,
    throughput_profile,
    throughput_table,
    throughput_figure,
    fedscale,
    fedscale_table,
    fedscale_figure,
    fedscale_kubernetes,
    figure12b,
    figure12b_table,
    figure12b_figure,
    functionality,
    figure6a,
    figure6b,
    figure7,
    schedule_trace,
    schedule_table,
    figure12a,
    figure12a_table,
    figure12a_figure,
    pollux_testbed,
    pollux_testbed_trace,
    pollux_testbed_table,
    pollux_testbed_manifests,


rule all:
    default_target: True
    input:
        get_all_targets(),


rule figure8a:
    input:
        get_figure_targets("figure8a"),


rule figure8b:
    input:
        get_figure_targets("figure8b"),


rule figure9:
    input:
        get_figure_targets("figure9"),


rule figure10:
    input:
        get_figure_targets("figure10"),


rule figure11:
    input:
        get_figure_targets("figure11"),


rule throughput_profile:
    input:
        get_testbed_targets(),


rule provision_all:
    input:
        expand("results/testbeds/{cluster}/nodes.json", cluster=get_testbed_clusters()),


rule fedscale:
    input:
        "results/tables/fedscale.csv",
        "results/figures/fedscale.pdf",
        "results/figures/fedscale.png",
        "results/testbeds/fedscale/kubernetes.yaml",


rule ray_burst:
    input:
        "results/tables/ray_burst.csv",
        "results/claims/ray_burst.json",
        "results/figures/ray_burst.pdf",
        "results/figures/ray_burst.png",


rule roleml_offload:
    input:
        "results/tables/roleml_offload.csv",
        "results/figures/roleml_offload.pdf",
        "results/figures/roleml_offload.png",
        "results/figures/roleml_offload_phases.pdf",
        "results/figures/roleml_offload_phases.png",


rule figure12b:
    input:
        "results/tables/figure12b.csv",
        "results/figures/figure12b.pdf",
        "results/figures/figure12b.png",


rule functionality:
    input:
        "results/tables/functionality.csv",


rule figure6a:
    input:
        "results/tables/figure6a.csv",


rule figure6b:
    input:
        "results/tables/figure6b.csv",


rule figure7:
    input:
        "results/tables/figure7.csv",
        "results/figures/figure7.pdf",
        "results/figures/figure7.png",


rule figure12a:
    input:
        "results/tables/figure12a.csv",
        "results/figures/figure12a.pdf",
        "results/figures/figure12a.png",


# Pollux on a real testbed: AdaptDL jobs re-sized live by Pollux's policy on our controller
rule pollux_testbed:
    input:
        "results/tables/pollux_testbed.csv",
        "results/pollux_testbed/kubernetes/manifests.yaml",
