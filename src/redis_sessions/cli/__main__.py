"""``python -m redis_sessions.cli``: the ``redis-sessions`` command line."""

from . import main

main()
