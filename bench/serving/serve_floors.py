"""bench/serving/serve_latency.py's floors (issue 13), each verdict computed from one run, and its wrk table."""

from __future__ import annotations

from typing import Any

from service.settings import Settings

FLOOR_SIZE = 500
OVERHEAD_BOUND = 0.0005  # in-process rank() over raw session.run
HTTP_BOUND = 0.001  # wrk p50 over raw session.run
# The server's default scoring mode and the other one, both measured with wrk (1 and N processes).
DEFAULT_SCORING = Settings.model_fields["scoring_threads"].default
OTHER_SCORING = 0 if DEFAULT_SCORING else 2
WRK_SERVERS = ("ours", "other", "workers", "workers-other", "naive")


def scoring(threads: int) -> str:
    return "scoring on the event loop" if threads == 0 else f"{threads} scoring threads"


def wrk_names(workers: int = 2) -> dict[str, str]:
    default, other = scoring(DEFAULT_SCORING), scoring(OTHER_SCORING)
    return {"ours": f"(a) this server ({default}, the default)", "other": f"(a) this server, {other}",
            "workers": f"(a') this server, {workers} processes, {default}",
            "workers-other": f"(a') this server, {workers} processes, {other}", "naive": "(c) naive server"}


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}"


def verdicts(row: Any, stages: dict, workers: int = 2) -> list[tuple[str, bool, str]]:
    """(floor, passed, evidence) at FLOOR_SIZE candidates; `row` is serve_latency's SizeRow at that size."""
    raw = row.raw.percentile(50)
    out = []
    if stages.get("size") == FLOOR_SIZE:  # both timed in one loop, alternately (bench/serving/serve_stages.py)
        over = stages["total"] - stages["raw"]
        out.append((f"in-process rank() over raw session.run <= {ms(OVERHEAD_BOUND)} ms", over <= OVERHEAD_BOUND,
                    f"{ms(stages['total'])} - {ms(stages['raw'])} = {ms(over)} ms (medians, timed alternately "
                    f"in one loop; against session.run back to back, {ms(raw)} ms: "
                    f"{ms(stages['total'] - raw)} ms)"))
    # No throughput floor against the naive server any more: the comparison is with the serving frameworks
    # around the same pipeline (bench/serving/peers, the serve-peers section); the naive server stays a row.
    names = wrk_names(workers)
    for server in (s for s in WRK_SERVERS if s != "naive" and s in row.wrk):
        one = next((w for w in row.wrk[server] if w.connections == 1), None)
        if one is not None:
            out.append((f"HTTP p50 (wrk, 1 connection) <= raw session.run + {ms(HTTP_BOUND)} ms, {names[server]}",
                        one.p50 <= raw + HTTP_BOUND, f"{ms(one.p50)} vs {ms(raw + HTTP_BOUND)} ms"))
    at70 = row.ours.at70
    out.append(("p99 <= 3x p50 at 70% of peak (evenly spaced arrivals, Python client)",
                at70.percentile(99) <= 3 * at70.percentile(50),
                f"{ms(at70.percentile(99))} vs {ms(3 * at70.percentile(50))} ms"))
    return out


def render_floors(rows: list, stages: dict, workers: int = 2) -> list[str]:
    row = next((r for r in rows if r.size == FLOOR_SIZE), None)
    if row is None:
        return [f"Floors are checked at {FLOOR_SIZE} candidates (not measured in this run)."]
    out = [f"Floors at {FLOOR_SIZE} candidates (each verdict computed by this run):", ""]
    out += [f"- {name}: {evidence} -> {'PASS' if ok else 'FAIL'}" for name, ok, evidence in verdicts(row, stages, workers)]
    raw = row.raw70
    out.append(f"- for comparison, raw session.run alone paced at 70% of its own peak: p99/p50 = "
               f"{raw.percentile(99) / raw.percentile(50):.1f} (the jitter this machine adds during the run)")
    return out


def render_wrk(rows: list, workers: int = 2) -> list[str]:
    row = next((r for r in rows if r.size == FLOOR_SIZE and r.wrk), None)
    if row is None:
        return []
    out = [f"Load from `wrk` (compiled; one request body of {FLOOR_SIZE} candidates, keep-alive connections, as many "
           "requests as the server answers), ms:", "",
           "| server | connections | p50 | p99 | req/s | errors |", "|---|---:|---:|---:|---:|---:|"]
    names = wrk_names(workers)
    for server, results in row.wrk.items():
        for w in results:
            out.append(f"| {names[server]} | {w.connections} | {ms(w.p50)} | {ms(w.p99)} | {w.throughput:.0f} "
                       f"| {w.errors} |")
    return out

