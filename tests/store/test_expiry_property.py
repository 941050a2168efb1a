"""T1: over random sequences of create / update / read / touch / regenerate / destroy, every
session key has 0 < PTTL <= idle timeout, and a cookie's Max-Age agrees with it within 1 s."""

from __future__ import annotations

import re
import time

import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from redis_sessions import RedisStore, SessionConfig, connect
from redis_sessions.engine import SessionEngine, handle_for

IDLE = 100  # seconds
OPS = st.lists(
    st.sampled_from(["write", "read", "touch", "regenerate", "destroy", "forget", "delete"]),
    min_size=1,
    max_size=12,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=OPS, rolling=st.booleans())
def test_ttl_and_cookie_agree_after_every_step(
    ops: list[str], rolling: bool, redis_url: str, clean_redis: redis.Redis
) -> None:
    clean_redis.flushall()
    store = RedisStore(connect(redis_url))
    config = SessionConfig(secret="p" * 32, idle_timeout=IDLE, rolling=rolling, touch_after=0)
    engine = SessionEngine(config, serializer=store.serializer, max_size=store.max_size)
    cookie: str | None = None
    for step, op in enumerate(ops):
        incoming = engine.read_cookie(cookie)
        now = int(time.time() * 1000)
        spec = engine.load_spec(incoming, now)
        session = engine.open_session(incoming, store.load(spec) if spec else None, now)
        if op == "write":
            session[f"k{step}"] = step
        elif op == "read":
            dict(session)
        elif op == "touch":
            session.touch()
        elif op == "regenerate":
            session.regenerate()
            session["user"] = "u"
        elif op == "destroy":
            session.destroy()
        elif op == "delete" and len(session):
            del session[next(iter(session))]
        plan = engine.plan(session, now)
        result = store.commit(plan)
        engine.committed(session, plan, result)
        headers = dict(engine.response_headers(session, incoming, plan, result, False))
        if op == "forget":
            cookie = None
        elif "set-cookie" in headers:
            value = headers["set-cookie"].split(";", 1)[0].split("=", 1)[1]
            cookie = f"session={value}" if value else None
            age = re.search(r"Max-Age=(\d+)", headers["set-cookie"])
            assert age is not None
            if value:
                sid = value.rsplit(".", 1)[0]
                pttl = clean_redis.pttl(f"sess:{{{handle_for(sid)}}}")
                assert abs(int(age.group(1)) * 1000 - pttl) <= 1000, (op, pttl, age.group(0))
        for key in clean_redis.scan_iter(match="sess:*"):
            assert 0 < clean_redis.pttl(key) <= IDLE * 1000, (op, key)
    store.close()
