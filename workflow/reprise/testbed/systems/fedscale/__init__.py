"""FedScale on the testbed: data set, job, deployments (process, Docker, Kubernetes), record."""
