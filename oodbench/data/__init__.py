"""Datasets, sources and suites."""
