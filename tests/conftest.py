"""Shared fixtures."""

import pytest

from llm_exporter.testing import fresh_registry

# `server` (the local fake provider, per module) and `registry` fixtures for the SDK tests;
# a test module defining its own fixture of the same name uses its own.
pytest_plugins = ["sdk_harness"]


@pytest.fixture
def reg():
    """A fresh prometheus-client registry with llm-exporter's settings reset."""
    return fresh_registry()
