"""Settings of the example project: Django's own session machinery, stored by redis-sessions.

Run: ``python examples/django_app/manage.py runserver`` (Redis at ``$REDIS_URL``, default
``redis://127.0.0.1:6379/0``). No database is needed: sessions live in Redis.
"""

import os

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example only: set DJANGO_SECRET_KEY for real use")
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
ROOT_URLCONF = "example_site.urls"
USE_TZ = True

INSTALLED_APPS = [
    "django.contrib.sessions",  # for the `clearsessions` command (a no-op with Redis TTLs)
]

MIDDLEWARE = [
    # First, so it also sees the save SessionMiddleware makes on the way out: Redis down is a
    # 503 with Retry-After, never a silent logout.
    "redis_sessions.django.StoreUnavailableMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
]

# The one line that switches Django's sessions to Redis; everything else is Django's own.
SESSION_ENGINE = "redis_sessions.django"
REDIS_SESSIONS = {
    "url": os.environ.get("REDIS_URL"),  # None: $REDIS_URL, then redis://127.0.0.1:6379/0
    "prefix": "sess:",
    "retry_after": 5,
}
SESSION_COOKIE_AGE = 14 * 24 * 3600  # the Redis key's TTL, refreshed on every save
SESSION_SAVE_EVERY_REQUEST = False
SESSION_EXPIRE_AT_BROWSER_CLOSE = False
