"""The example Django project using ``SESSION_ENGINE = "redis_sessions.django"``."""
