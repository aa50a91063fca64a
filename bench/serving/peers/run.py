"""The peers: ranker-serve against BentoML, LitServe, Ray Serve and KServe's model server, same model.

Each peer is a small adapter in this package around the project's own ranking path (core.Ranker:
service.live.pipeline.rank, so the same encoder, model, weights profile and calibration), run from its
own virtualenv `.venv-peers/<name>` (scripts/peers_setup.sh, `make peers-setup`; never part of the
default install). Every server binds 127.0.0.1; the run refuses to go on if `ss` shows a port of any
server's process tree (Ray's GCS, raylet, workers included) listening on another address. Ray's core
binds its gRPC ports on 0.0.0.0 whatever its node IP, so the run re-executes itself in a network
namespace whose only interface is lo (`unshare -n`, root): there a wildcard reaches loopback only. It refuses
to time a peer whose item_id order differs from ranker-serve's on any of a few distinct request bodies.

Then ROUNDS rounds of wrk slices (bench/serving/wrk_load.run_wrk), interleaved across the servers (each
round starts with the next server), with 1 connection (p50, p99, req/s) and with CONNECTIONS
connections (req/s); server CPU per request is utime+stime of the server's whole process tree
(/proc/<pid>/stat) over its slices divided by the requests it answered in them. Two in-process rows
are the reference: bare session.run and service.live.pipeline.rank (bytes in, bytes out) in a loop.
Timings on a shared machine are noisy: compare the rows of one run (ratios), not runs.

    python -m bench.serving.peers --bundle runs/demo-bundle                          # ~6 rounds x 5 s slices
    python -m bench.serving.peers --bundle B --rounds 1 --seconds 1 --no-doc         # smoke
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import orjson

from bench.doc_sections import DOC, write_section
from bench.serving.peers.core import ENDPOINTS
from bench.serving.serve_processes import ServerProcess
from bench.serving.wrk_load import WrkResult, run_wrk

REPO = Path(__file__).resolve().parents[3]
SECTION = "serve-peers"
PEERS = ("kserve", "bentoml", "litserve", "rayserve")
LABELS = {
    "ranker-serve": "ranker-serve (uvicorn, this project)",
    "kserve": "KServe model server (`kserve.Model`)",
    "bentoml": "BentoML (`@bentoml.service`)",
    "litserve": "LitServe (`LitAPI`)",
    "rayserve": "Ray Serve (`@serve.deployment`)",
}
LOOPBACK = re.compile(r"^(127\.\d+\.\d+\.\d+|\[::1\]|::1|\[::ffff:127\.\d+\.\d+\.\d+\])$")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bundle", type=Path, default=REPO / "runs" / "demo-bundle")
    p.add_argument("--weights", type=Path, default=REPO / "configs" / "weights.yaml")
    p.add_argument("--candidates", type=int, default=500, help="candidates per request")
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--seconds", type=float, default=5.0, help="seconds per wrk slice")
    p.add_argument("--connections", type=int, default=4, help="connections of the throughput slices")
    p.add_argument("--peers", nargs="+", default=list(PEERS), choices=PEERS)
    p.add_argument("--bodies", type=int, default=4, help="distinct request bodies of the order check")
    p.add_argument("--loop-seconds", type=float, default=5.0, help="most seconds of each in-process loop")
    p.add_argument("--doc", type=Path, default=DOC)
    p.add_argument("--no-doc", action="store_true", help="print the section only")
    p.add_argument("--no-netns", action="store_true",
                   help="run in this network namespace (Ray then fails the loopback check)")
    return p.parse_args(argv)


# --- process trees: CPU and listening sockets -------------------------------------------------------

def tree_pids(root: int) -> set[int]:
    """root and every descendant (from /proc/*/stat's ppid)."""
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                stat = Path(f"/proc/{d}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(d))
    seen, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid not in seen:
            seen.add(pid)
            todo.extend(children.get(pid, []))
    return seen


def tree_cpu(root: int) -> float:
    """Seconds of utime+stime of root's process tree (processes alive now)."""
    tick, total = os.sysconf("SC_CLK_TCK"), 0
    for pid in tree_pids(root):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / tick


WILDCARD = re.compile(r"^(0\.0\.0\.0|\*|\[::\]|::)$")


def interfaces() -> list[str]:
    """The network interfaces of this process's network namespace (/proc/net/dev is per namespace)."""
    return [line.split(":")[0].strip() for line in Path("/proc/net/dev").read_text().splitlines()[2:]]


def non_loopback_listeners(ss_output: str, pids: set[int], only_lo: bool = False) -> list[str]:
    """Lines of `ss -ltnpH` whose socket belongs to one of `pids` and listens on a non-loopback address.
    only_lo: the network namespace has no interface but lo, so a wildcard address reaches loopback only."""
    bad = []
    for line in ss_output.splitlines():
        parts = line.split()
        if len(parts) < 4:
            continue
        local = parts[3]
        host = local.rsplit(":", 1)[0]
        owners = {int(p) for p in re.findall(r"pid=(\d+)", line)}
        if owners & pids and not LOOPBACK.match(host) and not (only_lo and WILDCARD.match(host)):
            bad.append(line.strip())
    return bad


def check_loopback(servers: dict[str, ServerProcess]) -> None:
    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout
    only_lo = interfaces() == ["lo"]
    for name, s in servers.items():
        bad = non_loopback_listeners(out, tree_pids(s.proc.pid), only_lo)
        if bad:
            raise SystemExit(f"{name} listens on a non-loopback address; refusing to run:\n" + "\n".join(bad))


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def stop_tree(server: ServerProcess) -> None:
    """SIGTERM the server, then whatever of its process tree outlives it (LitServe's and BentoML's workers
    do), by pid; SIGKILL after 10 s."""
    pids = tree_pids(server.proc.pid) - {server.proc.pid}
    server.stop()
    for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 0.0)):
        alive = [pid for pid in pids if _alive(pid)]
        for pid in alive:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait
        while alive and time.monotonic() < deadline:
            time.sleep(0.2)
            alive = [pid for pid in alive if _alive(pid)]


# --- the order check ----------------------------------------------------------------------------------

def item_order(response: bytes) -> list:
    return [item["item_id"] for item in orjson.loads(response)["items"]]


def post(port: int, path: str, body: bytes) -> bytes:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.read()


def same_order(reference: list[list], got: list[list]) -> bool:
    return len(reference) == len(got) and all(a == b and len(a) > 0 for a, b in zip(reference, got, strict=True))


# --- servers --------------------------------------------------------------------------------------------

def venv_python(name: str) -> Path:
    return REPO / ".venv-peers" / name / "bin" / "python"


def commands(name: str) -> list[str]:
    py = str(venv_python(name))
    if name == "bentoml":
        return [str(venv_python(name).parent / "bentoml"), "serve",
                "bench.serving.peers.bentoml_service:RankerService", "--host", "127.0.0.1"]
    module = {"kserve": "kserve_server", "litserve": "litserve_server", "rayserve": "rayserve_app"}[name]
    return [py, "-m", f"bench.serving.peers.{module}"]


def start_servers(args: argparse.Namespace, tmp: Path) -> dict[str, ServerProcess]:
    from service.contract.bundle import read_manifest
    from service.registry import Registry

    manifest = read_manifest(args.bundle)
    registry = Registry(tmp / "registry", manifest.model_name)
    registry.publish(args.bundle)
    env = {"RANKER_REGISTRY_ROOT": str(registry.root), "RANKER_MODEL_NAME": manifest.model_name,
           "RANKER_WEIGHTS_PATH": str(args.weights), "RANKER_MAX_CANDIDATES": str(max(1000, args.candidates))}
    servers = {"ranker-serve": ServerProcess([sys.executable, "-m", "service.cli"], env, tmp / "ranker-serve.log",
                                             ENDPOINTS["ranker-serve"][1])}
    peer_env = {"PEERS_BUNDLE": str(args.bundle.resolve()), "PEERS_WEIGHTS": str(args.weights.resolve()),
                "RAY_USAGE_STATS_ENABLED": "0", "BENTOML_DO_NOT_TRACK": "True", "LITSERVE_DISABLE_TELEMETRY": "1"}
    for name in args.peers:
        if not venv_python(name).exists():
            args.skipped[name] = "not installed (scripts/peers_setup.sh)"
            continue
        servers[name] = ServerProcess(commands(name), peer_env, tmp / f"{name}.log", ENDPOINTS[name][1],
                                      port_flag=True)
    for name, s in list(servers.items()):
        try:
            s.wait_ready(timeout=240)
        except RuntimeError as e:
            if name == "ranker-serve":
                raise
            args.skipped[name] = f"did not start: {str(e).splitlines()[0]}"
            print(e, file=sys.stderr)
            del servers[name]
    return servers


# --- measurement ----------------------------------------------------------------------------------------

@dataclass
class Measured:
    latency: list[WrkResult] = field(default_factory=list)
    peak: list[WrkResult] = field(default_factory=list)
    cpu: float = 0.0
    requests: int = 0

    def p(self, pct: int) -> float:
        return statistics.median(getattr(w, f"p{pct}") for w in self.latency) * 1000

    @staticmethod
    def rate(slices: list[WrkResult]) -> float:
        return sum(w.requests for w in slices) / sum(w.requests / w.throughput for w in slices)


def interleaved(servers: dict[str, ServerProcess], body: bytes, args: argparse.Namespace) -> dict[str, Measured]:
    """Like wrk_load.interleave, with each server's own path and its process tree's CPU around each slice."""
    result = {name: Measured() for name in servers}
    names = list(servers)

    def load(name: str, connections: int, seconds: float, record: bool) -> WrkResult:
        s = servers[name]
        cpu0 = tree_cpu(s.proc.pid)
        r = run_wrk(s.port, body, connections, seconds, path=ENDPOINTS[name][0])
        if r.errors:
            raise RuntimeError(f"{name}: {r.errors} failed requests")
        if record:
            result[name].cpu += tree_cpu(s.proc.pid) - cpu0
            result[name].requests += r.requests
        return r

    for name in names:  # warm-up
        load(name, args.connections, 1, record=False)
    for i in range(args.rounds):
        order = names[i % len(names):] + names[:i % len(names)]
        for name in order:
            result[name].latency.append(load(name, 1, args.seconds, record=True))
        for name in order:
            result[name].peak.append(load(name, args.connections, args.seconds, record=True))
        print(f"round {i + 1}/{args.rounds}", file=sys.stderr)
    return result


def in_process(args: argparse.Namespace, body: bytes) -> dict[str, float]:
    """ms medians: bare session.run on the pre-encoded request, and pipeline.rank bytes in -> bytes out."""
    from bench.serving.serve_stages import load_serving, raw_session_run
    from service.live.pipeline import rank

    serving = load_serving(args.bundle, args.weights)
    raw, _ = raw_session_run(serving, body, 5000, args.loop_seconds)
    for _ in range(20):
        rank(serving, body)
    times, start = [], time.perf_counter()
    for _ in range(5000):
        t0 = time.perf_counter()
        rank(serving, body)
        times.append(time.perf_counter() - t0)
        if time.perf_counter() - start > args.loop_seconds:
            break
    return {"session.run": raw.percentile(50) * 1000, "pipeline.rank": statistics.median(times) * 1000}


def run(args: argparse.Namespace) -> str:
    from service.contract.bundle import read_manifest
    from service.examples import example_request

    args.skipped, args.load = {}, [os.getloadavg()[0]]
    started = time.monotonic()
    manifest = read_manifest(args.bundle)
    bodies = [orjson.dumps(example_request(manifest, args.candidates, seed=s)) for s in range(args.bodies)]
    with tempfile.TemporaryDirectory(prefix="serve-peers-") as tmp:
        servers = start_servers(args, Path(tmp))
        try:
            check_loopback(servers)
            reference = [item_order(post(servers["ranker-serve"].port, ENDPOINTS["ranker-serve"][0], b))
                         for b in bodies]
            args.same = {}
            for name in list(servers):
                if name == "ranker-serve":
                    continue
                got = [item_order(post(servers[name].port, ENDPOINTS[name][0], b)) for b in bodies]
                args.same[name] = same_order(reference, got)
                if not args.same[name]:
                    args.skipped[name] = "returned a different order: not timed"
                    stop_tree(servers.pop(name))
            measured = interleaved(servers, bodies[0], args)
            check_loopback(servers)  # Ray's workers start lazily: once more after the load
        finally:
            for s in servers.values():
                stop_tree(s)
    refs = in_process(args, bodies[0])
    args.load.append(os.getloadavg()[0])
    args.wall = time.monotonic() - started
    return render(measured, refs, args)


# --- the section ----------------------------------------------------------------------------------------

def _commit() -> str:
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO)
    return out.stdout.strip() or "unknown"


def command() -> str:
    return os.environ.get("PEERS_COMMAND") or " ".join(["python -m bench.serving.peers", *sys.argv[1:]])


def render(measured: dict[str, Measured], refs: dict[str, float], args: argparse.Namespace) -> str:
    load = " -> ".join(f"{a:.1f}" for a in args.load)
    cpus = len(os.sched_getaffinity(0))
    lines = [
        "## The peers: ranker-serve vs BentoML, LitServe, Ray Serve, KServe (`bench/serving/peers`)",
        "",
        f"Produced by `{command()}` on {date.today().isoformat()} at commit `{_commit()}`, {platform.machine()} "
        f"with {cpus} cores (1-minute load average {load} from start to end; {args.wall / 60:.0f} min wall). "
        f"{args.candidates} candidates per request, the demo bundle; wrk on loopback, {args.rounds} rounds of "
        f"{args.seconds:g} s slices interleaved across the servers (each round starting with the next one), so a "
        "busy moment of the shared machine hits every server alike: read the ratios between rows, not the "
        "absolute numbers. p50/p99: median over the 1-connection slices of wrk's percentiles, ms. Server CPU "
        "per request: utime+stime of the server's whole process tree over its slices / requests answered. "
        f"Network namespace: {'loopback only (unshare -n; Ray binds its core ports on 0.0.0.0)' if interfaces() == ['lo'] else 'the host one'}; "
        "every server bound 127.0.0.1 where it can be told to, and `ss` found no listener of any server's process "
        "tree on another address (checked before and after the load).",
        "",
        f"| server | p50 ms | p99 ms | req/s 1 conn | req/s {args.connections} conns | server CPU ms/request |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, m in measured.items():
        lines.append(f"| {LABELS[name]} | {m.p(50):.2f} | {m.p(99):.2f} | {Measured.rate(m.latency):.0f} "
                     f"| {Measured.rate(m.peak):.0f} | {m.cpu / m.requests * 1000:.2f} |")
    lines += [f"| in-process: bare `session.run` in a loop (reference) | {refs['session.run']:.2f} | | | | |",
              f"| in-process: `service.live.pipeline.rank`, bytes in -> bytes out, in a loop (reference) "
              f"| {refs['pipeline.rank']:.2f} | | | | |", ""]
    for name, same in args.same.items():
        lines.append(f"- {LABELS[name]}: same order checked: {'yes' if same else 'NO (not timed)'} "
                     f"({args.bodies} distinct bodies, item_id order equal to ranker-serve's)")
    for name, why in args.skipped.items():
        if name not in args.same or not args.same[name]:
            lines.append(f"- {LABELS[name]}: {why}")
    lines += ["", *reading(measured, refs)]
    return "\n".join(lines)


def reading(measured: dict[str, Measured], refs: dict[str, float]) -> list[str]:
    ours = measured["ranker-serve"]
    out = [f"Reading: every peer runs the very same ranking call ({refs['pipeline.rank']:.2f} ms in-process, of "
           f"which {refs['session.run']:.2f} ms is session.run); what differs is the HTTP and framework layer "
           f"around it. ranker-serve answers at p50 {ours.p(50):.2f} ms, i.e. "
           f"{ours.p(50) - refs['pipeline.rank']:.2f} ms above the bare pipeline."]
    for name, m in measured.items():
        if name != "ranker-serve":
            out.append(f"- {LABELS[name]}: p50 {m.p(50) / ours.p(50):.1f}x, p99 {m.p(99) / ours.p(99):.1f}x, "
                       f"req/s at 1 conn {Measured.rate(m.latency) / Measured.rate(ours.latency):.2f}x of ranker-serve's; "
                       f"CPU/request {m.cpu / m.requests / (ours.cpu / ours.requests):.1f}x.")
    out.append("The adapters are deliberately small and use each framework's documented way to serve a Python "
               "model (bench/serving/peers/); a framework's batching, replicas or workers are not tuned, as "
               "ranker-serve runs its defaults too (one process).")
    return out


def in_private_netns(argv: list[str]) -> None:
    """Re-run this command in a new network namespace whose only interface is loopback (unshare -n, root).

    Ray's core processes (GCS, raylet, workers, agents) bind their gRPC ports on 0.0.0.0 whatever the
    node IP; in a namespace with nothing but lo, every server of the run is reachable from loopback only,
    and the ss check still refuses any address other than loopback or a wildcard."""
    if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("ip") is None:
        raise SystemExit("the peers run in a loopback-only network namespace: needs root, unshare and ip "
                         "(or --no-netns with --peers excluding rayserve)")
    inner = " ".join(shlex.quote(a) for a in [sys.executable, "-m", "bench.serving.peers", *argv])
    os.environ["PEERS_COMMAND"] = command()
    os.execvp("unshare", ["unshare", "--net", "--", "sh", "-c", f"ip link set lo up && exec {inner}"])


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if not args.no_netns and interfaces() != ["lo"]:
        in_private_netns(argv)
    if not (args.bundle / "manifest.json").exists():
        raise SystemExit(f"no bundle at {args.bundle}: `ranker demo` writes runs/demo-bundle")
    section = run(args)
    print(section)
    if not args.no_doc:
        write_section(SECTION, section, args.doc)
        print(f"wrote section {SECTION!r} of {args.doc}", file=sys.stderr)


if __name__ == "__main__":
    main()
