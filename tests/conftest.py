"""Shared fixtures: real server processes (see servers.py), store runners, pickle spy."""

from __future__ import annotations

from servers import *  # noqa: F403 - the server fixtures
