"""The minimal Redis/Valkey ACL rules of the user the session store connects as.

The store never sends CONFIG, KEYS, FLUSHALL, FLUSHDB or MONITOR (nor any other administrative
command), so it runs as a user allowed only the commands below, only on its own keys:

    ACL SETUSER sessions reset on >secret <SESSION_USER_ACL>

Lua scripts are checked against the same rules, command by command and key by key, so the
commands the store's scripts call are listed too. See ``docs/deployment.md``.
"""

from __future__ import annotations

from .store._layouts import _glob_escape

__all__ = ["SESSION_USER_ACL", "acl_rules"]

# What redis-py's Cluster client adds: the slot map (CLUSTER SLOTS) and the command table it
# learns key positions from (COMMAND).
_CLUSTER = ("cluster|slots", "command")

# What the store's durability options send after a save.
_WAIT = ("wait", "waitaof")

# What redis-py sends on every new connection (CLIENT SETNAME "redis-sessions", CLIENT SETINFO
# of the library name and version) and as the health check of an idle connection.
_CONNECTION = ("client|setname", "client|setinfo", "ping")

# What the store sends itself: its scripts (EVALSHA, EVAL when the server lost them), listing,
# plain reads, deletes and TTL refreshes, and CLIENT NO-TOUCH around the CLI's metadata reads.
_STORE = (
    "evalsha",
    "eval",
    "scan",
    "hgetall",
    "unlink",
    "del",
    "pexpire",
    "exists",
    "client|no-touch",
)

# What the scripts call besides those: session hashes, the lock and nonce-log strings, and the
# metadata of the CLI listing (OBJECT IDLETIME, MEMORY USAGE).
_SCRIPTS = (
    "type",
    "hmget",
    "hget",
    "hset",
    "hsetnx",
    "hincrby",
    "hdel",
    "hkeys",
    "hlen",
    "pttl",
    "get",
    "set",
    "object|idletime",
    "memory|usage",
)


# Subcommands and commands Redis 7.2 (and Valkey 7.2) added: an older server refuses a whole
# ACL SETUSER that names one. Without them redis-py's CLIENT SETINFO and the listing's CLIENT
# NO-TOUCH get "unknown subcommand", which both ignore; WAITAOF (wait_aof) needs 7.2.
_SINCE_7_2 = frozenset({"client|setinfo", "client|no-touch", "waitaof"})


def _version(text: str) -> tuple[int, int]:
    parts = text.strip().split(".")
    try:
        return int(parts[0]), int(parts[1]) if len(parts) > 1 else 0
    except ValueError:
        raise ValueError(f"server_version must look like '7.0' or '7.2.4', not {text!r}") from None


def acl_rules(
    prefix: str = "sess:", *, cluster: bool = False, wait: bool = False, server_version: str = "7.2"
) -> str:
    """The ACL rules of a session user whose store uses key prefix `prefix`; with `cluster`
    for a Cluster client, with `wait` for the ``wait_replicas`` / ``wait_aof`` options.

    `server_version` is the server's ``redis_version`` (``INFO server``; any Valkey is "7.2"
    or later): for Redis 7.0 and 7.1 the rules leave out ``client|setinfo``,
    ``client|no-touch`` and ``waitaof``, which those servers do not know (they would refuse the
    whole rule).

    One line of space-separated rules, for ``ACL SETUSER <user> reset on >password <rules>``
    or after ``user <user> on >password`` in an ACL file. The key pattern is
    ``<prefix>{*``: a session ``<prefix>{<handle>}`` and its companion keys
    ``<prefix>{<handle>}:lock`` and ``<prefix>{<handle>}:w``, nothing else (glob characters of
    the prefix are escaped). No Pub/Sub channels, no command outside the list.

    Raises ValueError for a prefix with whitespace, which a rule cannot hold, or a
    `server_version` that is not a version.
    """
    if any(c.isspace() for c in prefix):
        raise ValueError(f"an ACL key pattern cannot hold whitespace: {prefix!r}")
    names = (
        *_CONNECTION,
        *_STORE,
        *_SCRIPTS,
        *(_CLUSTER if cluster else ()),
        *(_WAIT if wait else ()),
    )
    if _version(server_version) < (7, 2):
        names = tuple(name for name in names if name not in _SINCE_7_2)
    commands = " ".join(f"+{name}" for name in names)
    return f"resetkeys ~{_glob_escape(prefix)}{{* resetchannels -@all {commands}"


SESSION_USER_ACL = acl_rules()
"""The ACL rules of the session user for the default prefix ``sess:``: ``~sess:{*``, no
channels, and only the commands the library sends (directly, in its Lua scripts, and through
redis-py on connect)."""
