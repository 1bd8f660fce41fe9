"""One module per provider (ssh, docker, slurm, kubernetes): nodes made ready, and torn down."""
