"""Run records, the contract between stages: RunResult, and its writer and reader."""
