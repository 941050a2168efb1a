"""Redis URLs: the topology a URL names (`parse_target`) and the URL of a Cloud Foundry bound
service (`url_from_vcap`).

Pure: no I/O and no client here (redis-py's own URL parser is imported only to read the
credentials and TLS options of a Sentinel or Cluster URL), so the module imports with redis-py
blocked (tests/unit/test_sans_io.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote

from ._errors import ConfigError
from ._redact import redact_url as _redacted

__all__ = ["Target", "parse_target", "url_from_vcap"]


def url_from_vcap(vcap: str | None) -> str | None:
    """The URL of the first Redis/Valkey service bound to a Cloud Foundry app, from the
    ``VCAP_SERVICES`` JSON, or None.

    A service counts when its label, name or tags mention redis or valkey. Its credentials'
    ``uri`` or ``url`` is used as is; else one is built from ``host``, ``port`` (``tls_port``
    first, as ``rediss://``) and ``password``. Malformed JSON gives None, never an error.
    """
    if not vcap:
        return None
    try:
        services = json.loads(vcap)
    except ValueError:
        return None
    if not isinstance(services, dict):
        return None
    for instances in services.values():
        for service in instances if isinstance(instances, list) else ():
            if not isinstance(service, dict):
                continue
            words = [service.get("label"), service.get("name"), *(service.get("tags") or [])]
            if not any(
                isinstance(w, str) and ("redis" in w.lower() or "valkey" in w.lower())
                for w in words
            ):
                continue
            creds = service.get("credentials")
            if not isinstance(creds, dict):
                continue
            for field in ("uri", "url"):
                if isinstance(creds.get(field), str) and "://" in creds[field]:
                    return str(creds[field])
            host = creds.get("host") or creds.get("hostname")
            if not isinstance(host, str):
                continue
            tls = creds.get("tls_port")
            scheme, port = ("rediss", tls) if tls else ("redis", creds.get("port", 6379))
            password = creds.get("password")
            auth = f":{quote(str(password), safe='')}@" if password else ""
            return f"{scheme}://{auth}{host}:{port}/0"
    return None


_SENTINEL_SCHEMES = {"redis+sentinel": False, "rediss+sentinel": True}
_CLUSTER_SCHEMES = {"redis+cluster": False, "rediss+cluster": True}
# Options of the URL query meant for the Sentinels, not for the data connections.
_SENTINEL_QUERY = ("sentinel_password", "sentinel_username")


@dataclass(frozen=True, slots=True)
class Target:
    """Where a URL points: one server, a Sentinel-managed service or a Cluster.

    Attributes:
        kind: ``"single"``, ``"sentinel"`` or ``"cluster"``.
        url: the URL for a single server (as given), else None.
        nodes: the Sentinels or Cluster startup nodes, as (host, port).
        service: the Sentinel service (master) name; "" otherwise.
        kwargs: connection options for the data servers (user, password, db, TLS).
        sentinel_kwargs: connection options for the Sentinels (their own user and password).
    """

    kind: str
    url: str | None = None
    nodes: tuple[tuple[str, int], ...] = ()
    service: str = ""
    kwargs: dict[str, Any] | None = None
    sentinel_kwargs: dict[str, Any] | None = None


def parse_target(url: str, cluster: bool = False) -> Target:
    """Parse a URL of any topology (raises `ConfigError` on a malformed one).

    - ``redis://``, ``rediss://``, ``unix://``: one server (redis-py's URL syntax);
    - ``redis+sentinel://[user:password@]host:port[,host:port...]/service[/db]``, with
      ``sentinel_password`` / ``sentinel_username`` in the query when the Sentinels require
      their own credentials (the ones before ``@`` are the data servers'); ``rediss+sentinel``
      for TLS to both;
    - ``redis+cluster://[user:password@]host:port[,host:port...]/``: Cluster startup nodes
      (one reachable node is enough); ``rediss+cluster`` for TLS. With ``cluster=True`` a
      ``redis://`` or ``rediss://`` URL (one or several hosts) means a Cluster too.

    Other query options (``ssl_ca_certs``, ``ssl_cert_reqs``, ...) are redis-py's.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ConfigError(f"not a Redis URL (no scheme): {_redacted(url)}")
    if (
        scheme in _SENTINEL_SCHEMES
        or scheme in _CLUSTER_SCHEMES
        or (cluster and scheme in ("redis", "rediss"))
    ):
        return _parse_multi(scheme, rest, url)
    if scheme not in ("redis", "rediss", "unix"):
        raise ConfigError(
            f"unknown Redis URL scheme {scheme!r}: use redis://, rediss://, "
            "unix://, redis+sentinel:// or redis+cluster://"
        )
    return Target("single", url=url)


def _parse_multi(scheme: str, rest: str, url: str) -> Target:
    tls = _SENTINEL_SCHEMES.get(scheme, _CLUSTER_SCHEMES.get(scheme, scheme == "rediss"))
    netloc, path, query = _split(rest)
    userinfo, _, hosts = netloc.rpartition("@")
    nodes = tuple(_host_port(part, url) for part in hosts.split(",") if part)
    if not nodes:
        raise ConfigError(f"no host in Redis URL: {_redacted(url)}")
    params = [p for p in query.split("&") if p]
    own = {k: v for k, _, v in (p.partition("=") for p in params) if k in _SENTINEL_QUERY}
    rest_query = "&".join(p for p in params if p.partition("=")[0] not in _SENTINEL_QUERY)
    segments = [s for s in path.split("/") if s]
    service, db = "", ""
    if scheme in _SENTINEL_SCHEMES:
        if not segments:
            raise ConfigError(
                f"redis+sentinel:// URL without a service name (…/mymaster/0): {_redacted(url)}"
            )
        service, db = segments[0], (segments[1] if len(segments) > 1 else "")
    elif segments and segments != ["0"]:
        raise ConfigError(f"a Cluster has only database 0: {_redacted(url)}")
    # redis-py parses the credentials and the query (TLS options) of a one-host URL. Imported
    # here, not at the top: a one-server URL and the module itself need no redis-py.
    from redis.connection import parse_url

    auth = f"{userinfo}@" if userinfo else ""
    one = f"{'rediss' if tls else 'redis'}://{auth}placeholder/{db}" + (
        f"?{rest_query}" if rest_query else ""
    )
    kwargs: dict[str, Any] = parse_url(one)  # type: ignore[no-untyped-call]
    kwargs.pop("host", None)
    kwargs.pop("port", None)
    if kwargs.pop("connection_class", None) is not None or tls:
        kwargs["ssl"] = True
    if scheme not in _SENTINEL_SCHEMES:
        kwargs.pop("db", None)
        return Target("cluster", nodes=nodes, kwargs=kwargs)
    sentinel_kwargs: dict[str, Any] = {
        name.removeprefix("sentinel_"): unquote(value) for name, value in own.items()
    }
    sentinel_kwargs.update({k: v for k, v in kwargs.items() if k.startswith("ssl")})
    return Target(
        "sentinel",
        nodes=nodes,
        service=unquote(service),
        kwargs=kwargs,
        sentinel_kwargs=sentinel_kwargs,
    )


def _split(rest: str) -> tuple[str, str, str]:
    rest, _, query = rest.partition("?")
    netloc, slash, path = rest.partition("/")
    return netloc, slash + path, query


def _host_port(part: str, url: str) -> tuple[str, int]:
    host, port = part, "6379"
    if part.startswith("["):  # [::1]:26379
        host, _, tail = part[1:].partition("]")
        port = tail.removeprefix(":") or port
    elif ":" in part:
        host, port = part.rsplit(":", 1)
    if not host or not port.isdigit():
        raise ConfigError(f"bad host:port {part!r} in Redis URL: {_redacted(url)}")
    return host, int(port)
