"""Chronus: lease-based admission, leases picked by a MILP or greedily.

See docs/policies/chronus.md.
"""
