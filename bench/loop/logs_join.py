"""`ranker logs join` at scale (issue 23 §3): 50M impressions and 10M events, rows/s and peak RSS (floor ≤ 4 GiB).

Generates an impression log shaped like the server's (service/impressions/: request fields, position,
score, four heads, ten features, model_role, hive `date=/hour=` partitions, many files) and feedback
events for it with DuckDB itself (bounded memory, a few seconds per 10M rows), then runs the join as
a subprocess (`python -m training.cli logs join ... --memory-limit 3GB --threads 2`) and reads its
peak RSS from getrusage(RUSAGE_CHILDREN). The events: 20 candidates per request over two days; every
100th event an orphan, every 100th (offset 1) an exact retry of the one before it; event delays of
0-4000 s against the demo's 1 h window, so about a tenth are late.

    .venv/bin/python -m bench.loop.logs_join                         # 50M / 10M; writes docs/BENCHMARKS.md "logs-join"
    .venv/bin/python -m bench.loop.logs_join --rows 200000 --no-write-doc   # a quick run
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "bench" / "results" / "logs_join.json"
SECTION = "logs-join"
COMMAND = ".venv/bin/python -m bench.loop.logs_join"
RSS_FLOOR = 4 * 2**30
PER_REQUEST = 20
START = datetime(2026, 12, 1, tzinfo=UTC)
SPAN_SECONDS = 2 * 86400

# Impression i: request i // 20 at START + request * step, item a hash of i; numbers from hashes of i.
_IMPRESSION = """
SELECT 'req-' || CAST(r AS VARCHAR) AS request_id,
       TIMESTAMPTZ '{start}' + to_milliseconds(CAST(r * {step_ms} AS BIGINT)) AS ts,
       'replica-' || CAST(r % 4 AS VARCHAR) AS replica, 'demo' AS model_name, 7::BIGINT AS model_version,
       3::BIGINT AS weights_generation, 'default' AS profile, 'exp-1' AS experiment,
       CASE WHEN r % 2 = 0 THEN 'control' ELSE 'treatment' END AS arm, 'u' || CAST(r % 100000 AS VARCHAR) AS user_key,
       'current' AS model_role,
       'i' || CAST(hash(i) % 50000 AS VARCHAR) AS item_id, CAST(i % {per} + 1 AS INTEGER) AS position,
       (hash(i, 1) % 1000) / 1000.0 AS score, (hash(i, 2) % 1000) / 1000.0 AS head_click,
       (hash(i, 3) % 1000) / 10.0 AS head_watch_time, (hash(i, 4) % 1000) / 1000.0 AS head_like,
       (hash(i, 5) % 500) / 100.0 AS head_rating,
       'u' || CAST(r % 100000 AS VARCHAR) AS user_id, 'seg' || CAST(r % 8 AS VARCHAR) AS user_segment,
       CASE WHEN r % 3 = 0 THEN 'ios' WHEN r % 3 = 1 THEN 'android' ELSE 'web' END AS device,
       'cat' || CAST(hash(i) % 50000 % 40 AS VARCHAR) AS item_category,
       CAST(r % 97 AS DOUBLE) AS user_activity, CAST(r % 24 AS DOUBLE) AS hour,
       (hash(i) % 50000) / 7.0 AS item_popularity, CAST(hash(i) % 365 AS DOUBLE) AS item_age_days,
       (hash(i, 6) % 100) / 100.0 AS title_caps_ratio,
       CAST([] AS VARCHAR[]) AS defaulted, CAST([] AS VARCHAR[]) AS clipped
"""
_EVENT_KINDS = "CASE WHEN k % 10 < 5 THEN 'click' WHEN k % 10 < 8 THEN 'watch_seconds' WHEN k % 10 < 9 THEN 'like' " \
               "ELSE 'rating' END"


def generate(work: Path, rows: int, events: int) -> dict:
    """Write work/impressions and work/feedback; returns their sizes and the generation time."""
    import duckdb

    t0 = time.perf_counter()
    con = duckdb.connect()
    for setting in ("TimeZone = 'UTC'", "memory_limit = '2GB'", "threads = 2", "preserve_insertion_order = false",
                    f"temp_directory = '{work / 'spill'}'"):
        con.execute(f"SET {setting}")
    step_ms = SPAN_SECONDS * 1000 // max(1, rows // PER_REQUEST)
    imp = _IMPRESSION.format(start=START.isoformat(), step_ms=step_ms, per=PER_REQUEST)
    con.execute(f"COPY (SELECT *, strftime(ts, '%Y-%m-%d') AS date, strftime(ts, '%H') AS hour_ FROM "
                f"(SELECT i, i // {PER_REQUEST} AS r FROM range({rows}) t(i)) s, LATERAL ({imp}) x) "
                f"TO '{work / 'imp-raw'}' (FORMAT parquet, PARTITION_BY (date, hour_), COMPRESSION zstd, "
                "FILE_SIZE_BYTES '64MB')")
    _rename_hour(work / "imp-raw", work / "impressions")
    # Event k belongs to impression j (k's hash), or to no impression (orphan); k % 100 == 1 repeats k - 1.
    ev = f"""
    SELECT CASE WHEN k % 100 = 0 THEN 'orphan-' || CAST(k AS VARCHAR) ELSE 'req-' || CAST(j // {PER_REQUEST} AS VARCHAR)
           END AS request_id, 'i' || CAST(hash(j) % 50000 AS VARCHAR) AS item_id, {_EVENT_KINDS} AS event,
           CASE WHEN k % 10 < 5 THEN NULL WHEN k % 10 < 8 THEN CAST(hash(k) % 600 AS DOUBLE)
                WHEN k % 10 < 9 THEN CAST(hash(k) % 2 AS DOUBLE) ELSE CAST(hash(k) % 5 + 1 AS DOUBLE) END AS value,
           TIMESTAMPTZ '{START.isoformat()}' + to_milliseconds(CAST((j // {PER_REQUEST}) * {step_ms}
               + (hash(k) % 4000) * 1000 AS BIGINT)) AS ts,
           'e' || CAST(k AS VARCHAR) AS event_id
    FROM (SELECT CASE WHEN n % 100 = 1 THEN n - 1 ELSE n END AS k FROM range({events}) t(n)) a,
         LATERAL (SELECT CAST(hash(k, 9) % {rows} AS BIGINT) AS j) b"""
    (work / "feedback").mkdir()
    con.execute(f"COPY ({ev}) TO '{work / 'feedback' / 'events.parquet'}' (FORMAT parquet, COMPRESSION zstd)")
    con.close()
    files = list((work / "impressions").rglob("*.parquet"))
    return {"generate_seconds": round(time.perf_counter() - t0, 1), "impression_files": len(files),
            "impression_bytes": sum(f.stat().st_size for f in files),
            "event_bytes": (work / "feedback" / "events.parquet").stat().st_size, "step_ms": step_ms}


def _rename_hour(raw: Path, out: Path) -> None:
    """DuckDB's partition column `hour_` (the demo has a feature `hour`) -> the log's `hour=HH` folders."""
    for day in raw.iterdir():
        for part in day.iterdir():
            target = out / day.name / part.name.replace("hour_=", "hour=")
            target.parent.mkdir(parents=True, exist_ok=True)
            part.rename(target)
    shutil.rmtree(raw)


def expected_counts(rows: int, events: int) -> dict:
    """What the generator guarantees: orphans and retries."""
    return {"orphan": len(range(0, events, 100)), "duplicate_events": len(range(1, events, 100))}


def run_join(work: Path, memory_limit: str, threads: int) -> dict:
    end = START + timedelta(seconds=SPAN_SECONDS + 2 * 3600)  # every impression's 1 h window has closed
    cmd = [sys.executable, "-m", "training.cli", "logs", "join", "--impressions", str(work / "impressions"),
           "--feedback", str(work / "feedback"), "--spec", str(REPO / "configs" / "demo.yaml"),
           "--out", str(work / "joined"), "--end", end.isoformat(), "--memory-limit", memory_limit,
           "--threads", str(threads), "--temp-dir", str(work / "join-spill")]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"the join failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # KiB on Linux
    report = json.loads((work / "joined" / "_join_report.json").read_text())
    return {"seconds": round(seconds, 1), "peak_rss_bytes": peak, "report": report, "stdout": proc.stdout,
            "command": " ".join(["ranker", *cmd[3:]])}


def measure(ns: argparse.Namespace, work: Path) -> dict:
    import duckdb

    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO).stdout
    results = {"command": COMMAND + ("" if ns.rows == 50_000_000 and ns.events == 10_000_000
                                     else f" --rows {ns.rows} --events {ns.events}"),
               "date": time.strftime("%Y-%m-%d"), "commit": rev.strip(), "duckdb": duckdb.__version__,
               "python": platform.python_version(), "rows": ns.rows, "events": ns.events,
               "memory_limit": ns.memory_limit, "threads": ns.threads}
    results["generated"] = generate(work, ns.rows, ns.events)
    join = run_join(work, ns.memory_limit, ns.threads)
    results.update(join_seconds=join["seconds"], peak_rss_bytes=join["peak_rss_bytes"], report=join["report"],
                   join_command=join["command"], rows_per_second=round(ns.rows / join["seconds"]))
    out = list((work / "joined").rglob("*.parquet"))
    results["output_bytes"] = sum(f.stat().st_size for f in out)
    return results


def check(results: dict) -> list[str]:
    """The floors: peak RSS ≤ 4 GiB; every row and event accounted for."""
    r, want = results["report"], expected_counts(results["rows"], results["events"])
    problems = []
    if results["peak_rss_bytes"] > RSS_FLOOR:
        problems.append(f"peak RSS {results['peak_rss_bytes'] / 2**30:.2f} GiB > 4 GiB")
    if r["impressions_read"] != results["rows"] or r["labelled_rows"] + r["pending"] + r["duplicate_impressions"] \
            != results["rows"]:
        problems.append(f"impressions not all accounted for: {r}")
    if r["events_read"] != results["events"] or sum(r["events"].values()) != results["events"] - r["duplicate_events"]:
        problems.append(f"events not all accounted for: {r}")
    if r["events"].get("orphan", 0) != want["orphan"] or r["duplicate_events"] != want["duplicate_events"]:
        problems.append(f"orphans/duplicates {r['events'].get('orphan')}/{r['duplicate_events']} != {want}")
    return problems


def section(results: dict) -> str:
    r, g = results["report"], results["generated"]
    ev = ", ".join(f"{k} {v:,}" for k, v in sorted(r["events"].items()))
    gib = results["peak_rss_bytes"] / 2**30
    return "\n".join([
        "## The join: `ranker logs join` at scale (issue 23 §3)",
        "",
        f"Produced by `{results['command']}` on {results['date']} at commit `{results['commit']}` (DuckDB "
        f"{results['duckdb']}, Python {results['python']}, 2 cores shared with other work, memory_limit "
        f"{results['memory_limit']}, {results['threads']} threads). The join ran as "
        f"`{results['join_command'].split(' --impressions')[0]} ...` in a subprocess; peak RSS is the child's "
        "`ru_maxrss`.",
        "",
        "| impressions | events | join wall time | rows/s | peak RSS (floor 4 GiB) | input | output |",
        "|---:|---:|---:|---:|---:|---:|---:|",
        f"| {results['rows']:,} in {g['impression_files']} files | {results['events']:,} | "
        f"{results['join_seconds']:.1f} s | {results['rows_per_second']:,} | {gib:.2f} GiB | "
        f"{(g['impression_bytes'] + g['event_bytes']) / 2**30:.2f} GiB | {results['output_bytes'] / 2**30:.2f} GiB |",
        "",
        f"The report: {r['labelled_rows']:,} labelled rows written in {len(r['partitions'])} date partitions, "
        f"{r['pending']:,} pending, {r['duplicate_impressions']:,} duplicate impressions; "
        f"{r['events_read']:,} events read, {r['duplicate_events']:,} retried (same event_id) dropped; {ev}. "
        "The generator's orphans and retries are asserted exactly (bench/loop/logs_join.py `check`). Generating "
        f"the data took {g['generate_seconds']} s (not part of the join).",
    ])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=50_000_000, help="impressions")
    p.add_argument("--events", type=int, default=None, help="events (default rows / 5)")
    p.add_argument("--memory-limit", default="3GB")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--work", type=Path, default=None, help="data directory (default a temp dir, deleted after)")
    p.add_argument("--write-doc", action=argparse.BooleanOptionalAction, default=True)
    ns = p.parse_args(argv)
    ns.events = ns.events if ns.events is not None else ns.rows // 5
    work = Path(tempfile.mkdtemp(prefix="logs-join-", dir=ns.work))
    try:
        results = measure(ns, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    problems = check(results)
    print(section(results))
    if ns.write_doc:
        from bench.doc_sections import write_section

        RESULTS.write_text(json.dumps(results, indent=1) + "\n")
        write_section(SECTION, section(results))
    if problems:
        raise SystemExit("floors not met: " + "; ".join(problems))


if __name__ == "__main__":
    main()
