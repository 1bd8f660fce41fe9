# Provision stage: the node image, and each cluster brought up, probed and torn down (nodes.json).


rule node_image:
    input:
        dockerfile="workflow/testbed/node/Dockerfile",
        entrypoint="workflow/testbed/node/entrypoint.sh",
        sshd_config="workflow/testbed/node/sshd_config",
        base_script="workflow/testbed/node/debian-base.sh",
        lock="requirements.lock",
        pyproject="pyproject.toml",
        # the nodes run this code: a change rebuilds Reprise's layer (seconds) and the runs after it
        sources=get_node_sources(),
    output:
        record="results/testbeds/images/node.json",
    log:
        "results/logs/testbeds/node_image.log",
    benchmark:
        "results/benchmarks/testbeds/node_image.tsv"
    conda:
        "../envs/testbed.yaml"
    params:
        image=get_image_settings(),
    script:
        "../scripts/build_node_image.py"


rule provision:
    input:
        inventory=get_inventory,
        image=get_node_image_record,
    output:
        nodes="results/testbeds/{inventory}/nodes.json",
    log:
        "results/logs/testbeds/{inventory}/provision.log",
    benchmark:
        "results/benchmarks/testbeds/{inventory}/provision.tsv"
    conda:
        "../envs/testbed.yaml"
    resources:
        nodes=get_testbed_nodes,
        gres=get_testbed_gres,
    script:
        "../scripts/provision.py"
