"""Reprise: reproduce ElasticFlow's evaluation and its baselines with one command."""

__version__ = "0.1.0"
