"""Helpers for the Django tests: settings from the example project, round-trip counting."""

from __future__ import annotations

import sys
from pathlib import Path

import django
from django.conf import settings
from django.core.management import call_command

from redis_sessions import ConnectOptions
from tests.support.servers import RoundTrips as RoundTrips  # re-exported for the tests here

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "django_app"

# A call to a dead server fails within about a second (health check included).
FAST_FAIL = ConnectOptions(
    socket_timeout=0.5,
    socket_connect_timeout=0.25,
    retries=1,
    backoff_base=0.02,
    backoff_cap=0.1,
    health_check_interval=1,
)


def configure() -> None:
    """Configure Django once per test process from the example's settings module.

    Added for the tests: django.contrib.auth (to drive the real ``login()``) on an in-memory
    sqlite database, migrated here. Each test points ``REDIS_SESSIONS`` at its own server.
    """
    if settings.configured:
        return
    sys.path.insert(0, str(EXAMPLE))
    from example_site import settings as example

    values = {name: getattr(example, name) for name in dir(example) if name.isupper()}
    values["INSTALLED_APPS"] = [
        "django.contrib.contenttypes",
        "django.contrib.auth",
        *values["INSTALLED_APPS"],
    ]
    values["DATABASES"] = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
    values["DEBUG"] = False
    settings.configure(**values)
    django.setup()
    call_command("migrate", verbosity=0)
