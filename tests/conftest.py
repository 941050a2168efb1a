"""Shared fixtures: real server processes (see servers.py), store runners, pickle spy."""

from __future__ import annotations

from clusterkit import redis_cluster  # noqa: F401 - the session's Cluster
from sentinelkit import sentinel_group  # noqa: F401 - the session's Sentinel group
from servers import *  # noqa: F403 - the server fixtures
