"""Shared pytest fixtures for the core tests and every in-repo plugin's tests."""

pytest_plugins = ["tests.fixtures"]
