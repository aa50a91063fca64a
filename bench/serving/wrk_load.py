"""Load from `wrk` (a compiled load generator, Debian package), so the client's cost is not the server's.

`ensure_wrk()` installs it with apt-get when it is missing and we are root (the benchmark's own setup);
`run_wrk` posts one body over N connections for a few seconds and parses p50/p99 and requests/s;
`interleave` loads several servers that differ in one setting, slice by slice, for side-by-side ratios.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

SCRIPT = """wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open("{body}", "rb")
wrk.body = f:read("*a")
f:close()
"""
_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


@dataclass
class WrkResult:
    connections: int
    p50: float  # seconds
    p99: float
    throughput: float  # requests/s
    requests: int
    errors: int


def ensure_wrk() -> str:
    """Path of the wrk binary; installs the Debian package when missing (needs root)."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0:
        raise RuntimeError("wrk is not installed: `apt-get install wrk` (as root), then rerun")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, capture_output=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True, env=env, capture_output=True)
    return shutil.which("wrk") or "wrk"


def run_wrk(port: int, body: bytes, connections: int, seconds: float, path: str = "/v1/rank",
            headers: Mapping[str, str] | None = None) -> WrkResult:
    """wrk with one thread per connection (at most 2 threads: the machine's cores) for `seconds`; every
    request carries `headers` besides Content-Type."""
    wrk = ensure_wrk()
    with tempfile.TemporaryDirectory(prefix="wrk-") as tmp:
        body_file, script = Path(tmp) / "body.json", Path(tmp) / "post.lua"
        body_file.write_bytes(body)
        extra = "".join(f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}\n" for k, v in (headers or {}).items())
        script.write_text(SCRIPT.format(body=body_file) + extra)
        cmd = [wrk, f"-t{min(connections, 2)}", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency",
               "-s", str(script), f"http://127.0.0.1:{port}{path}"]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=seconds + 30).stdout
    return parse_wrk(out, connections)


def parse_wrk(text: str, connections: int) -> WrkResult:
    """The numbers of wrk's `--latency` report."""
    def latency(pct: str) -> float:
        m = re.search(rf"^\s*{pct}%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.M)
        if m is None:
            raise ValueError(f"no {pct}% latency in wrk's output:\n{text}")
        return float(m.group(1)) * _UNITS[m.group(2)]

    requests = int(re.search(r"(\d+) requests in", text).group(1))
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", text))
    errors += sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", text))
    return WrkResult(connections, latency("50"), latency("99"), float(re.search(r"Requests/sec:\s+([\d.]+)", text)
                                                                        .group(1)), requests, errors)


@dataclass
class Interleaved:
    """wrk slices of several servers: per server, its one-connection slices (latency) and its slices with
    the run's connections (peak), in round order."""

    latency: dict[str, list[WrkResult]] = field(default_factory=dict)
    peak: dict[str, list[WrkResult]] = field(default_factory=dict)

    def p(self, name: str, pct: int) -> float:
        """ms: the median over the one-connection slices of wrk's p50 or p99."""
        return statistics.median(getattr(w, f"p{pct}") for w in self.latency[name]) * 1000

    def throughput(self, name: str) -> float:
        """requests/s over all the peak slices."""
        slices = self.peak[name]
        return sum(w.requests for w in slices) / sum(w.requests / w.throughput for w in slices)

    def requests(self, name: str) -> int:
        return sum(w.requests for w in self.latency[name])


def interleave(ports: Mapping[str, int], body: bytes, seconds: float, concurrency: int, rounds: int,
               headers: Mapping[str, Mapping[str, str]] | None = None) -> Interleaved:
    """`rounds` rounds; in each, every server gets a one-connection slice, then one with `concurrency`
    connections, each round starting with the next server, so a busy moment of the shared machine hits
    every server alike and none always goes first. `headers`: per server, what its requests carry."""
    result = Interleaved({name: [] for name in ports}, {name: [] for name in ports})
    names, per_slice = list(ports), max(1.0, seconds / rounds)
    sent = {name: (headers or {}).get(name) for name in names}

    def load(name: str, connections: int, slice_seconds: float) -> WrkResult:
        r = run_wrk(ports[name], body, connections, slice_seconds, headers=sent[name])
        if r.errors:
            raise RuntimeError(f"{name}: {r.errors} failed requests")
        return r

    for name in names:  # warm-up
        load(name, concurrency, 1)
    for i in range(rounds):
        order = names[i % len(names):] + names[:i % len(names)]
        for name in order:
            result.latency[name].append(load(name, 1, per_slice))
        for name in order:
            result.peak[name].append(load(name, concurrency, per_slice))
    return result
