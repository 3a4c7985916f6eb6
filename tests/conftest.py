"""Shared fixtures."""

import pytest

from llm_exporter.testing import fresh_registry


@pytest.fixture
def reg():
    """A fresh prometheus-client registry with llm-exporter's settings reset."""
    return fresh_registry()
