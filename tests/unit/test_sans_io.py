"""The engine modules import without any I/O library; the public API is exported and documented."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import types

import pytest

import redis_sessions
import redis_sessions.engine

ENGINE_MODULES = [
    "_engine",
    "_session",
    "_config",
    "_signing",
    "_cookies",
    "_ids",
    "_record",
    "_serializers",
    "_plans",
    "_cycle",
    "_rules",
    "_stores",
    "_adapter",
    "engine",
]
# Pure helpers beside the engine: URL parsing (the connections are built in `_connect`).
PURE_MODULES = ["_urls", "_redact"]
BLOCKED = ["redis", "asyncio", "anyio", "starlette", "flask", "django"]

# Runs in a fresh interpreter. `redis_sessions/__init__.py` re-exports the stores (which need
# redis-py), so the package module is stood in for by an empty one with the same __path__:
# what is checked is that each engine module, and everything it imports, needs no I/O library.
SCRIPT = textwrap.dedent(
    """
    import importlib, importlib.util, sys, types

    BLOCKED = {blocked!r}

    class Block:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError("blocked in the sans-IO test: " + name)
            return None

    sys.meta_path.insert(0, Block())
    for name in BLOCKED:
        try:
            importlib.import_module(name)
        except ImportError:
            pass
        else:
            raise SystemExit("import hook does not block " + name)

    spec = importlib.util.find_spec("redis_sessions")
    package = types.ModuleType("redis_sessions")
    package.__path__ = list(spec.submodule_search_locations)
    sys.modules["redis_sessions"] = package

    for module in {modules!r}:
        importlib.import_module("redis_sessions." + module)

    loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
    assert not loaded, loaded
    print("sans-io ok")
    """
)


def _run(modules: list[str]) -> subprocess.CompletedProcess[str]:
    code = SCRIPT.format(blocked=BLOCKED, modules=modules)
    return subprocess.run(
        [sys.executable, "-I", "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_engine_modules_import_without_io_libraries():
    result = _run(ENGINE_MODULES)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "sans-io ok"


def test_url_modules_import_without_io_libraries():
    result = _run(PURE_MODULES)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "sans-io ok"


def test_the_import_hook_really_blocks_io_modules():
    # The same script fails for a module that needs redis-py: the check can fail.
    result = _run(["store._sync"])
    assert result.returncode != 0
    assert "blocked in the sans-IO test" in result.stderr


def test_engine_works_with_the_io_modules_blocked():
    code = SCRIPT.format(blocked=BLOCKED, modules=ENGINE_MODULES).replace(
        'print("sans-io ok")',
        textwrap.dedent(
            """
            from redis_sessions._config import SessionConfig
            from redis_sessions.engine import Committed, Incoming, SessionEngine
            from redis_sessions._serializers import JSONSerializer
            engine = SessionEngine(SessionConfig(secret="s" * 32),
                                   serializer=JSONSerializer(), max_size=65536)
            session = engine.open_session(Incoming(), None, 0)
            session["a"] = 1
            plan = engine.plan(session, 0)
            engine.committed(session, plan, Committed(True))
            headers = engine.response_headers(session, Incoming(), plan, Committed(True), False)
            assert headers[0][0] == "set-cookie", headers
            print("sans-io ok")
            """
        ),
    )
    result = subprocess.run(
        [sys.executable, "-I", "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "sans-io ok"


def _public_names(module: types.ModuleType) -> list[str]:
    return sorted(
        name
        for name, value in vars(module).items()
        if (not name.startswith("_") or name == "__version__")
        and not isinstance(value, types.ModuleType)
    )


PUBLIC = [redis_sessions, redis_sessions.engine]


@pytest.mark.parametrize("module", PUBLIC, ids=lambda m: m.__name__)
def test_all_lists_exactly_the_public_names_sorted(module: types.ModuleType) -> None:
    assert module.__all__ == _public_names(module)


def test_the_app_api_stays_small():
    # App authors' names only: the engine's are in redis_sessions.engine.
    assert len(redis_sessions.__all__) <= 25
    assert not set(redis_sessions.__all__) & {"SessionEngine", "Write", "Load", "Incoming"}


@pytest.mark.parametrize("module", PUBLIC, ids=lambda m: m.__name__)
def test_every_exported_name_has_a_docstring(module: types.ModuleType) -> None:
    missing = []
    for name in module.__all__:
        if name == "__version__":
            assert isinstance(module.__version__, str)
            continue
        obj = getattr(module, name)
        if not callable(obj) and not isinstance(obj, type):
            continue  # a constant or an alias (DONE, Plan): documented where it is defined
        doc = obj.__doc__ or ""
        # dataclasses invent "Name(field, ...)" when there is no docstring: that does not count.
        if not doc.strip() or doc.startswith(f"{name}("):
            missing.append(name)
    assert missing == []
