"""Fixtures for the sans-IO unit tests."""

from __future__ import annotations

import pytest

from redis_sessions.engine import SessionEngine

from ._support import make_engine


@pytest.fixture
def engine() -> SessionEngine:
    """An engine with the default configuration."""
    return make_engine()
