"""The loop, closed on the demo world: rank -> log -> feedback -> join -> retrain -> canary -> promote.

    1. v1 is trained on a small demo log and served by a real `ranker-serve` with its impression log on.
    2. Phase A: the demo's simulated users (training/data/demo_users.py: the generator's own truth)
       ask for rankings over HTTP and answer what they are shown with feedback events (POST /v1/feedback).
    3. `ranker logs join` labels the served impressions by the spec's feedback rules, and
       `ranker retrain --data JOINED --warm-start --canary 0.2` trains v2 on them: v2 serves 20 % of users.
    4. Phase B: the same users; `ranker experiment report --by model_version` compares v2 with v1 on
       phase B's rows, with the simulator's truth for the same served lists beside it; v2 is promoted.
    5. Phase C: a weights-profile experiment (click_only on half the users) read the same way.

Every request must answer 200. Prints each report, writes summary.json to --out and (with
--write-benchmarks) the closed-loop section of docs/BENCHMARKS.md.

    .venv/bin/python examples/closed_loop.py --out runs/closed-loop --write-benchmarks
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
import pyarrow.parquet as pq
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the server-process helper the end-to-end tests use
sys.path.insert(0, str(REPO))  # bench.doc_sections

from server_helpers import ServerProcess  # noqa: E402

from bench.doc_sections import write_section  # noqa: E402
from training.data.demo import DemoConfig, generate, write_feature_snapshots, write_partitioned  # noqa: E402
from training.data.demo_users import DemoUsers, Shown  # noqa: E402

SECTION = "closed-loop"
MODEL = "demo"
TRUTH_TASKS = ("click", "watch_time", "like", "rating")


def ranker(*args: str, ok: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess:
    """One `ranker` command, as an operator or a scheduler runs it."""
    proc = subprocess.run([sys.executable, "-m", "training.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=REPO)
    if proc.returncode not in ok:
        raise RuntimeError(f"ranker {' '.join(map(str, args[:3]))} exited {proc.returncode}:\n{proc.stdout}\n"
                           f"{proc.stderr}")
    return proc


class Users:
    """The simulated users and catalogue: who asks, which candidates the frontend sends, what they answer."""

    def __init__(self, cfg: DemoConfig, features: Path, position_bias: float, seed: int) -> None:
        self.world = DemoUsers(cfg, position_bias)
        users = pq.read_table(features / "users.parquet", columns=["user_id", "user_activity"])
        items = pq.read_table(features / "items.parquet", columns=["item_id", "item_popularity"])
        self.user_ids = users["user_id"].to_pylist()
        self.user_p = _normalized(users["user_activity"].to_numpy())
        self.item_ids = np.array(items["item_id"].to_pylist())
        self.item_p = _normalized(items["item_popularity"].to_numpy() + 0.05)
        self.rng = np.random.default_rng(seed)

    def request(self, candidates: int, top_k: int) -> dict:
        user = self.user_ids[self.rng.choice(len(self.user_ids), p=self.user_p)]
        picked = self.rng.choice(len(self.item_ids), size=min(candidates, len(self.item_ids)), replace=False,
                                 p=self.item_p)
        context = {"device": str(self.rng.choice(["mobile", "desktop", "tv", "tablet"])),
                   "hour": int(self.rng.integers(0, 24))}
        return {"user": {"user_id": user}, "context": context, "top_k": top_k,
                "candidates": [{"item_id": str(i)} for i in self.item_ids[picked]]}


def _normalized(x: np.ndarray) -> np.ndarray:
    return x / x.sum()


class Phase:
    """One stretch of traffic: every ranked list, its feedback, and the truth of what was shown, per arm."""

    def __init__(self, name: str) -> None:
        self.name, self.statuses, self.feedback = name, Counter(), Counter()
        self.start = datetime.now(UTC)
        self.truth: dict[str, dict[str, list[np.ndarray]]] = {}
        self.users: dict[str, set[str]] = {}

    def run(self, client: httpx.Client, users: Users, requests: int, candidates: int, top_k: int) -> Phase:
        for _ in range(requests):
            body = users.request(candidates, top_k)
            r = client.post("/v1/rank", json=body)
            self.statuses[r.status_code] += 1
            if r.status_code != 200:
                continue
            ranked = r.json()
            shown_ids = [item["item_id"] for item in ranked["items"]]
            n = len(shown_ids)
            shown = Shown(user_id=[body["user"]["user_id"]] * n, item_id=shown_ids, device=[body["context"]["device"]] * n,
                          hour=[body["context"]["hour"]] * n, position=np.arange(n))
            self._record(ranked, body["user"]["user_id"], users.world.truth(shown))
            events = [{"request_id": ranked["request_id"], "item_id": shown_ids[row], "event": event,
                       **({"value": value} if value is not None else {}),
                       "event_id": f"{ranked['request_id']}/{shown_ids[row]}/{event}"}
                      for row, event, value in users.world.respond(shown, users.rng)]
            if events:
                f = client.post("/v1/feedback", json={"events": events})
                self.feedback[f.status_code] += 1
        self.end = datetime.now(UTC)
        return self

    def _record(self, ranked: dict, user: str, truth: dict[str, np.ndarray]) -> None:
        """Per arm (model version and weights arm): the truth of the shown rows, to put beside the report."""
        for arm in (f"model_version={ranked['model_version']}", f"arm={ranked.get('arm')}"):
            self.truth.setdefault(arm, {k: [] for k in truth})
            for k, v in truth.items():
                self.truth[arm][k].append(v)
            self.users.setdefault(arm, set()).add(user)

    def true_means(self, arm: str) -> dict[str, float]:
        """What the report's means estimate, from the simulator's truth: the click rate of the shown rows,
        and the satisfaction labels' means over the rows where they are observed (after a click)."""
        t = {k: np.concatenate(v) for k, v in self.truth[arm].items()}
        clicked = t["p_click_shown"]
        return {"click": float(clicked.mean()),
                "watch_time": float((clicked * t["watch_seconds"]).sum() / clicked.sum()),
                "like": float((clicked * t["p_like"]).sum() / clicked.sum()),
                "rating": float((clicked * t["rating"]).sum() / clicked.sum())}

    def failed(self) -> int:
        return sum(n for s, n in (self.statuses + self.feedback).items() if s != 200)


def loop_spec(out: Path, data: Path, epochs: int, window: str) -> tuple[Path, Path]:
    """The demo spec on the demo log (v1), and the same spec on the joined log (the retrains)."""
    raw = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())
    raw["data"]["path"] = str(data)
    raw["train"].update(epochs=epochs, threads=1)
    raw["eval"]["weights"] = str(out / "weights.yaml")
    raw["feedback"]["window"] = window
    first = out / "spec.yaml"
    first.write_text(yaml.safe_dump(raw, sort_keys=False))
    raw["data"]["path"] = str(out / "joined")
    joined = out / "spec-joined.yaml"
    joined.write_text(yaml.safe_dump(raw, sort_keys=False))
    return first, joined


def join(out: Path, spec: Path, wait: float, served_rows: int) -> dict:
    """After the attribution window, and once the log has published every row served so far (its segments
    roll within a second; on busy cores the compaction may take longer), the join."""
    time.sleep(wait)
    if not wait_for(lambda: published_rows(out / "logs" / "impressions") >= served_rows, 60):
        raise RuntimeError(f"the impression log published {published_rows(out / 'logs' / 'impressions'):,} of the "
                           f"{served_rows:,} rows served within 60 s")
    proc = ranker("logs", "join", "--impressions", out / "logs" / "impressions", "--feedback", out / "logs" / "feedback",
                  "--spec", spec, "--out", out / "joined", "--end", datetime.now(UTC).isoformat())
    print(proc.stdout)
    return json.loads((out / "joined" / "_join_report.json").read_text())


def published_rows(impressions: Path) -> int:
    return sum(pq.read_metadata(f).num_rows for f in impressions.glob("date=*/hour=*/*.parquet"))


def served_rows(phases: dict[str, Phase], rows_per_request: int) -> int:
    return sum(p.statuses[200] for p in phases.values()) * rows_per_request


def report(out: Path, spec: Path, phase: Phase, name: str, *args: str) -> dict:
    proc = ranker("experiment", "report", out / "joined", "--spec", spec, "--out", out / name, "--bootstrap", 1000,
                  "--start", phase.start.isoformat(), "--end", phase.end.isoformat(), *args)
    print(proc.stdout)
    return json.loads((out / name / "report.json").read_text())


def wait_for(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return condition()


def serving(client: httpx.Client) -> dict:
    return client.get("/v1/models").json()


def run(args: argparse.Namespace) -> dict:
    out = args.out.resolve()
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    t0 = time.perf_counter()
    cfg = DemoConfig(rows=args.rows, seed=0)
    logs = generate(cfg)
    write_partitioned(logs, out / "data")
    write_feature_snapshots(logs, out / "features")
    shutil.copy(REPO / "configs" / "weights.yaml", out / "weights.yaml")
    spec, joined_spec = loop_spec(out, out / "data", args.epochs, args.window)
    registry = out / "registry"
    ranker("train", spec, "--out", out / "v1", "--registry", registry, "--no-progress")
    for entity in ("item", "user"):
        ranker("features", "publish", out / "features" / f"{entity}s.parquet", "--registry", registry, "--entity", entity)
    users = Users(cfg, out / "features", args.position_bias, seed=1)
    server = ServerProcess({"RANKER_REGISTRY_ROOT": str(registry), "RANKER_MODEL_NAME": MODEL,
                            "RANKER_WEIGHTS_PATH": str(out / "weights.yaml"), "RANKER_POLL_INTERVAL": "1",
                            "RANKER_LOG_DIR": str(out / "logs"), "RANKER_LOG_ROLL_SECONDS": "1"},
                           out / "server.log").wait_ready(60)
    phases, steps = {}, {}
    try:
        with httpx.Client(base_url=server.url, timeout=10.0) as client:
            phases["A"] = Phase("A: v1 serves everyone").run(client, users, args.requests, args.candidates, args.top_k)
            steps["join_a"] = join(out, spec, args.wait, served_rows(phases, min(args.top_k, args.candidates)))
            retrain = ranker("retrain", joined_spec, "--registry", registry, "--data", out / "joined", "--warm-start",
                             "--canary", args.canary, "--work-dir", out / "retrain", ok=(0, 3))
            print(retrain.stdout)
            steps["retrain"] = json.loads((out / "retrain" / "gate_report.json").read_text())
            if steps["retrain"]["decision"] != "canary":
                raise RuntimeError(f"the retrain did not end in a canary: {steps['retrain']['failed']}")
            v2 = steps["retrain"]["version"]
            if not wait_for(lambda: (serving(client).get("canary") or {}).get("serving"), 30):
                raise RuntimeError(f"the server did not start the canary: {serving(client).get('canary')}")
            phases["B"] = Phase(f"B: v2 canary on {args.canary:.0%} of users").run(
                client, users, args.requests, args.candidates, args.top_k)
            steps["join_b"] = join(out, spec, args.wait, served_rows(phases, min(args.top_k, args.candidates)))
            steps["canary_report"] = report(out, spec, phases["B"], "canary-report", "--by", "model_version",
                                            "--expected", f"1={1 - args.canary},{v2}={args.canary}")
            ranker("registry", "promote", v2, "--registry", registry, "--model", MODEL)
            if not wait_for(lambda: serving(client)["model"]["version"] == v2, 30):
                raise RuntimeError(f"the server did not swap to v{v2}: it serves v{serving(client)['model']['version']}")
            experiment = {"name": "loop-click-only", "key": "user_id", "arms": {"click_only": 0.5}}
            weights = yaml.safe_load((out / "weights.yaml").read_text())
            (out / "weights.yaml").write_text(yaml.safe_dump({**weights, "experiments": experiment}, sort_keys=False))
            time.sleep(2.0)  # the server reloads weights.yaml within its poll interval
            phases["C"] = Phase("C: v2, click_only on half the users").run(
                client, users, args.requests, args.candidates, args.top_k)
            steps["join_c"] = join(out, spec, args.wait, served_rows(phases, min(args.top_k, args.candidates)))
            steps["weights_report"] = report(out, spec, phases["C"], "weights-report", "--by", "arm", "--weights",
                                             out / "weights.yaml", "--experiment", experiment["name"])
    finally:
        server.stop()
    summary = summarize(phases, steps, v2, time.perf_counter() - t0, args)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary


def summarize(phases: dict[str, Phase], steps: dict, v2: int, seconds: float, args: argparse.Namespace) -> dict:
    canary, weights = steps["canary_report"], steps["weights_report"]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO)
    return {
        "commit": commit.stdout.strip() or "?", "seconds": round(seconds, 1), "args": {k: str(v) for k, v in vars(args).items()},
        "failed_requests": sum(p.failed() for p in phases.values()),
        "phases": {k: {"name": p.name, "rank": dict(p.statuses), "feedback": dict(p.feedback)} for k, p in phases.items()},
        "joins": {k: v for k, v in steps.items() if k.startswith("join")},
        "retrain": {"decision": steps["retrain"]["decision"], "version": v2, "failed": steps["retrain"]["failed"]},
        "canary": {"report": canary, "truth": {str(a): phases["B"].true_means(f"model_version={a}")
                                               for a in (1, v2)}},
        "weights": {"report": weights, "truth": {a: phases["C"].true_means(f"arm={a}")
                                                 for a in ("control", "click_only")}},
    }


def _comparison_rows(report: dict, truth: dict[str, dict[str, float]], control: str, arm: str) -> list[str]:
    """One line per task: the report's estimate and difference beside the simulator's truth; then NDCG."""
    rows = []
    for task in TRUTH_TASKS:
        est, c = report["arms"][arm]["tasks"][task], report["comparisons"][arm][task]
        true_diff = truth[arm][task] - truth[control][task]
        rows.append(f"| {task} | {_interval(est)} | {truth[arm][task]:.4f} | {_interval(c['difference'], '+')} | "
                    f"{true_diff:+.4f} | {c['verdict']} |")
    ndcg, c = report["arms"][arm]["ndcg"], report["comparisons"][arm]["ndcg"]
    rows.append(f"| NDCG@{report['ndcg_k']} (logged labels) | {_interval(ndcg)} | | {_interval(c['difference'], '+')} "
                f"| | {c['verdict']} |")
    return rows


def _interval(x: dict, sign: str = "") -> str:
    if x.get("value") is None:
        return "n/a"
    if x.get("lo") is None:
        return f"{x['value']:{sign}.4f}"
    return f"{x['value']:{sign}.4f} [{x['lo']:{sign}.4f}, {x['hi']:{sign}.4f}]"


def benchmarks_section(s: dict) -> str:
    canary, weights = s["canary"], s["weights"]
    v2 = str(s["retrain"]["version"])
    head = "| task | arm's mean [95 %] | true mean | difference to control [95 %] | true difference | verdict |\n" \
           "|---|---|---|---|---|---|"
    lines = [
        "## The loop, closed: rank → log → feedback → join → retrain → canary → promote (issue 23 §6)",
        "",
        f"Produced by `.venv/bin/python examples/closed_loop.py --out runs/closed-loop --write-benchmarks` at commit "
        f"`{s['commit']}` "
        f"(args: {', '.join(f'{k}={v}' for k, v in s['args'].items() if k not in ('out', 'write_benchmarks'))}): "
        "rank → log → feedback → join → retrain → canary → promote on the demo world, through a real server. "
        f"{s['failed_requests']} failed requests of "
        f"{sum(sum(p['rank'].values()) + sum(p['feedback'].values()) for p in s['phases'].values()):,} "
        f"(rank and feedback) in {s['seconds']:.0f} s.",
        "",
        "- Joins (labelled rows written / pending): " + ", ".join(
            f"{k} {v['labelled_rows']:,} / {v['pending']:,}" for k, v in s["joins"].items()),
        f"- The retrain on phase A's joined log ended in `{s['retrain']['decision']}`: v{v2} at "
        f"{s['args']['canary']} of users.",
        "",
        f"**The canary (phase B), v{v2} against v1**, `ranker experiment report --by model_version`:",
        "",
        head, *_comparison_rows(canary["report"], canary["truth"], "1", v2),
        "",
        "**A weights experiment (phase C), click_only against the default profile**, `--by arm`:",
        "",
        head, *_comparison_rows(weights["report"], weights["truth"], "control", "click_only"),
        "",
        f"The true difference lies inside the report's 95 % interval in {_covered(s)} task comparisons above. "
        "True means are the simulator's expectations for the very lists served (P(click) at the shown position, "
        "and the satisfaction labels' expectations weighted by it, as they are observed after a click).",
    ]
    return "\n".join(lines) + "\n"


def _covered(s: dict) -> str:
    """'k of n': comparisons (canary and weights arm, every task) whose interval holds the true difference."""
    pairs = [(s["canary"], "1", str(s["retrain"]["version"])), (s["weights"], "control", "click_only")]
    hits = [c["report"]["comparisons"][arm][task]["difference"]["lo"] <= c["truth"][arm][task] - c["truth"][control][task]
            <= c["report"]["comparisons"][arm][task]["difference"]["hi"]
            for c, control, arm in pairs for task in TRUTH_TASKS]
    return f"{sum(hits)} of {len(hits)}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "closed-loop")
    parser.add_argument("--rows", type=int, default=100_000, help="rows of the demo log v1 trains on")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--requests", type=int, default=1500, help="rank requests per phase")
    parser.add_argument("--candidates", type=int, default=40)
    parser.add_argument("--top-k", type=int, default=10)
    parser.add_argument("--canary", type=float, default=0.2)
    parser.add_argument("--position-bias", type=float, default=0.0, help=(
        "eta of P(examined) = (1 + position)^-eta; 0 = the world v1 was trained on (ranker demo-data's default)"))
    parser.add_argument("--window", default="2s", help="the attribution window of the loop's spec")
    parser.add_argument("--wait", type=float, default=4.0, help="seconds before each join (window + log roll)")
    parser.add_argument("--write-benchmarks", action="store_true")
    args = parser.parse_args()
    summary = run(args)
    print(benchmarks_section(summary))
    if args.write_benchmarks:
        write_section(SECTION, benchmarks_section(summary))
    return 1 if summary["failed_requests"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
