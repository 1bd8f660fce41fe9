"""The Ray hybrid HPC-cloud burst study: data, workloads, schedulers and the sweep's runs."""
