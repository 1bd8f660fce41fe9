"""Data-parallel trainers of the paper's models: model zoo, torch.distributed trainer, checkpoints.

Only `names` is importable without torch; everything else needs the `testbed` extra.
"""
