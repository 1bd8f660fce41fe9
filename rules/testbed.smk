# Testbed stage: real processes on provisioned nodes; each job brings its cluster up and down.


rule throughput_profile_run:
    input:
        inventory=get_inventory,
        image=get_node_image_record,
        # a cluster is profiled after it was shown to come up (and one job at a time uses it)
        nodes="results/testbeds/{inventory}/nodes.json",
    output:
        summary="results/runs/testbed/throughput_profile/{inventory}/summary.json",
        jobs="results/runs/testbed/throughput_profile/{inventory}/jobs.csv",
        events="results/runs/testbed/throughput_profile/{inventory}/events.csv",
        measurements="results/runs/testbed/throughput_profile/{inventory}/measurements.csv",
        profiles=expand(
            "results/runs/testbed/throughput_profile/{{inventory}}/profiles/{model}.csv",
            model=get_profile_models(),
        ),
    log:
        "results/logs/testbed/throughput_profile/{inventory}.log",
    benchmark:
        "results/benchmarks/testbed/throughput_profile/{inventory}.tsv"
    conda:
        "../envs/testbed.yaml"
    resources:
        nodes=get_testbed_nodes,
    params:
        settings=get_throughput_settings,
    script:
        "../scripts/throughput_profile.py"
