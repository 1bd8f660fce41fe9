"""Gandiva: time-slicing with its own consolidating placement (docs/policies/gandiva.md)."""
