#!/usr/bin/env python
"""Django with redis-sessions: the example project's manage.py.

Run (from the repository root, with a Redis at ``$REDIS_URL``, e.g. ``python -m
redis_sessions.server`` in another terminal)::

    python examples/django_app/manage.py runserver

then open http://127.0.0.1:8000/ (a counter), http://127.0.0.1:8000/login, /api/me and /logout.
"""

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_site.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
