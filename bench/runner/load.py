"""Load runs: wrk with a Lua script that sends the sessions' cookies round-robin, or the asyncio
fallback (pyload.py) when wrk is missing. Both print one ``BENCH {json}`` line with the same
fields; each run is a child process that inherits this process's CPUs (the load generator's)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

PYLOAD = Path(__file__).resolve().parent / "pyload.py"

# setup() numbers the threads so that each starts at a different cookie; done() reports exact
# counts and percentiles (microseconds) as JSON instead of wrk's rounded text.
WRK_SCRIPT = """
local path = %(path)s
local cookies = {%(cookies)s}
local reqs = {}
local i = 0
local threads = 0

function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end

function init(args)
  if #cookies == 0 then
    reqs[1] = wrk.format("GET", path)
  else
    for k, cookie in ipairs(cookies) do
      reqs[k] = wrk.format("GET", path, {["Cookie"] = cookie})
    end
  end
  i = ((tid or 0) * 7) %% #reqs
end

function request()
  i = i %% #reqs + 1
  return reqs[i]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests": %%d, "duration_us": %%.0f, "connect": %%d, "read": %%d, "write": %%d, ' ..
    '"status": %%d, "timeout": %%d, "p50_us": %%.1f, "p99_us": %%.1f, "mean_us": %%.1f}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.mean))
end
"""


class LoadError(Exception):
    """The load generator failed or printed no summary."""


@dataclass(frozen=True)
class LoadResult:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int
    """Socket errors: connect, read, write, timeout."""
    bad_status: int
    """Responses with a status of 400 or more."""

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def _lua_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def wrk_binary() -> str | None:
    return shutil.which("wrk")


def wrk_version() -> str | None:
    binary = wrk_binary()
    if binary is None:
        return None
    done = subprocess.run(
        [binary, "-v"], capture_output=True, text=True, timeout=10, start_new_session=True
    )
    first = (done.stdout or done.stderr).splitlines()
    return first[0].split(" [")[0].strip() if first else "wrk"


def _parse(output: str, stderr: str) -> LoadResult:
    for line in output.splitlines():
        if line.startswith("BENCH "):
            data = json.loads(line[len("BENCH ") :])
            return LoadResult(
                requests=int(data["requests"]),
                seconds=float(data["duration_us"]) / 1e6,
                p50_ms=float(data["p50_us"]) / 1e3,
                p99_ms=float(data["p99_us"]) / 1e3,
                errors=int(data["connect"] + data["read"] + data["write"] + data["timeout"]),
                bad_status=int(data["status"]),
            )
    detail = (stderr.strip() or output.strip()).splitlines()
    raise LoadError(detail[-1] if detail else "no summary from the load generator")


def run(
    port: int, path: str, cookies: list[str], *, seconds: int, connections: int, threads: int = 1
) -> LoadResult:
    """Load ``GET path`` for `seconds` on `connections` connections, `cookies` round-robin."""
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        binary = wrk_binary()
        if binary is not None:
            script = Path(tmp, "session.lua")
            script.write_text(
                WRK_SCRIPT
                % {
                    "path": _lua_string(path),
                    "cookies": ", ".join(_lua_string(cookie) for cookie in cookies),
                }
            )
            argv = [
                binary,
                "-t",
                str(threads),
                "-c",
                str(max(connections, threads)),
                "-d",
                f"{seconds}s",
                "--latency",
                "--timeout",
                "10s",
                "-s",
                str(script),
                f"http://127.0.0.1:{port}{path}",
            ]
        else:
            cookie_file = Path(tmp, "cookies.txt")
            cookie_file.write_text("".join(f"{cookie}\n" for cookie in cookies))
            argv = [
                sys.executable,
                str(PYLOAD),
                "--port",
                str(port),
                "--path",
                path,
                "--seconds",
                f"{seconds:g}",
                "--connections",
                str(connections),
                "--cookies",
                str(cookie_file),
            ]
        try:
            done = subprocess.run(
                argv, capture_output=True, text=True, timeout=seconds + 60, start_new_session=True
            )
        except subprocess.TimeoutExpired as exc:
            raise LoadError(f"the load generator did not finish within {seconds + 60:g} s") from exc
    return _parse(done.stdout, done.stderr)
