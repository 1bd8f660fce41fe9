"""Pollux: goodput-driven co-adaptive allocation searched per round (docs/policies/pollux.md)."""
