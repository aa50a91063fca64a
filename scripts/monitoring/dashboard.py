"""The Grafana dashboard (plain JSON, schemaVersion 39): one row of two panels after another, every
query built from `names.py` and, for the feature shares, from the rules' own expression."""

from __future__ import annotations

from scripts.monitoring import names as m
from scripts.monitoring.rules import JOB, LATENCY_SLO_SECONDS, MODEL_AGE_HOURS, feature_share

RATE = "$__rate_interval"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
WIDTH, HEIGHT = 12, 8


def target(expr: str, legend: str, ref: str, fmt: str = "time_series") -> dict:
    return {"datasource": DATASOURCE, "expr": expr, "legendFormat": legend, "refId": ref, "format": fmt}


def panel(title: str, queries: list[tuple[str, str]], unit: str, kind: str = "timeseries",
          description: str = "", thresholds: list[float] | None = None) -> dict:
    """queries: (expr, legend) pairs; thresholds: red lines at these values."""
    steps = [{"color": "green", "value": None}] + [{"color": "red", "value": t} for t in thresholds or []]
    defaults: dict = {"unit": unit, "thresholds": {"mode": "absolute", "steps": steps}}
    if thresholds:
        defaults["custom"] = {"thresholdsStyle": {"mode": "line"}}
    out = {"type": kind, "title": title, "description": description, "datasource": DATASOURCE,
           "fieldConfig": {"defaults": defaults, "overrides": []},
           "targets": [target(e, legend, chr(ord("A") + i), "heatmap" if kind == "heatmap" else "time_series")
                       for i, (e, legend) in enumerate(queries)]}
    if kind == "heatmap":
        out["options"] = {"calculate": False, "yAxis": {"unit": unit}}
        out["fieldConfig"]["defaults"] = {"unit": unit}
    return out


def quantiles(histogram: str, by: str = "", matcher: str = "", qs: tuple[float, ...] = (0.5, 0.9, 0.99)) -> list:
    keys = ", ".join(k for k in ("le", by) if k)
    prefix = f"{{{{{by}}}}} " if by else ""
    return [(f"histogram_quantile({q}, sum by ({keys}) (rate({histogram}_bucket{matcher}[{RATE}])))",
             f"{prefix}p{round(q * 100)}") for q in qs]


def panels() -> list[dict]:
    return [
        panel("Traffic by profile and arm", [(f"sum by (profile, arm) (rate({m.PROFILE_REQUESTS}[{RATE}]))",
                                              "{{profile}} / {{arm}}")], "reqps",
              description="Answered /v1/rank requests per second (arm `none`: no experiment, or a named profile)."),
        panel("Request latency (answered)", quantiles(m.REQUEST_DURATION, matcher='{status="200"}')
              + quantiles(m.INFERENCE_DURATION, qs=(0.99,))[:1], "s", thresholds=[LATENCY_SLO_SECONDS],
              description="p50/p90/p99 of /v1/rank (200s); the last line is session.run's p99. Red: the SLO."),
        panel("Error ratio by status", [(f"sum by (status) (rate({m.REQUESTS}{{status!=\"200\"}}[{RATE}])) / "
                                         f"ignoring (status) group_left() sum (rate({m.REQUESTS}[{RATE}]))",
                                         "{{status}}")], "percentunit", thresholds=[0.01]),
        panel("Non-finite scores refused", [(f"sum (rate({m.NON_FINITE}[{RATE}]))", "refused/s")], "reqps"),
        panel("Head score p05 / p50 / p95 by task: served and training",
              quantiles(m.HEAD_SCORE, by="task", qs=(0.05, 0.5, 0.95))
              + [(f"max by (task, stat) ({m.HEAD_SCORE_TRAINING}{{stat=~\"p05|p50|p95\"}})", "{{task}} training {{stat}}")],
              "short", description="Each head's served output (histogram quantiles, as coarse as its buckets) beside "
                                   "the same quantiles of the served model on its holdout (the manifest's score_stats)."),
        panel("Head score mean by task: served and training",
              [(f"sum by (task) (rate({m.HEAD_SCORE}_sum[{RATE}])) / sum by (task) (rate({m.HEAD_SCORE}_count[{RATE}]))",
                "{{task}} served"), (f"max by (task) ({m.HEAD_SCORE_TRAINING}{{stat=\"mean\"}})", "{{task}} training")],
              "short"),
        panel("Head score distribution ($task)", [(f"sum by (le) (rate({m.HEAD_SCORE}_bucket{{task=~\"$task\"}}"
                                                   f"[{RATE}]))", "{{le}}")], "short", kind="heatmap"),
        panel("Defaulted share by feature", [(feature_share(m.DEFAULTED, RATE), "{{feature}}")], "percentunit",
              thresholds=[0.05], description="Values left out and scored with the training default."),
        panel("Clipped share by feature", [(feature_share(m.CLIPPED, RATE), "{{feature}}")], "percentunit",
              thresholds=[0.05], description="Numeric values outside the training range, clipped to it."),
        panel("Feature-store lookups, misses, errors",
              [(f"sum by (entity) (rate({m.FS_LOOKUPS}[{RATE}]))", "{{entity}} lookups"),
               (f"sum by (entity) (rate({m.FS_MISSES}[{RATE}]))", "{{entity}} misses"),
               (f"sum by (entity) (rate({m.FS_ERRORS}[{RATE}]))", "{{entity}} errors")], "ops"),
        panel("Feature-store lookup p99 and snapshot version",
              quantiles(m.FS_DURATION, by="entity", qs=(0.99,))
              + [(f"max by (entity) ({m.FS_SNAPSHOT_VERSION})", "{{entity}} snapshot version")], "s"),
        panel("Model version served", [(f"max by (version) ({m.MODEL_INFO}) == 1", "v{{version}}"),
                                       (f"sum by (result) (increase({m.MODEL_LOADS}[1h]))", "loads {{result}} /1h"),
                                       (f"max by (instance) ({m.MODEL_REFUSED})", "{{instance}} refused CURRENT")],
              "none"),
        panel("Model age", [(f"(time() - max by (instance) ({m.MODEL_CREATED})) / 3600", "{{instance}}")], "h",
              thresholds=[MODEL_AGE_HOURS]),
        panel("Weights generation and refusals", [(f"max by (instance) ({m.WEIGHTS_GENERATION})", "{{instance}} gen"),
                                                  (f"max by (instance) ({m.WEIGHTS_REFUSED})", "{{instance}} refused"),
                                                  (f"sum by (result) (increase({m.WEIGHTS_RELOADS}[1h]))",
                                                   "reloads {{result}} /1h")], "none"),
        panel("Ready processes and unknown request fields",
              [(f"sum ({m.READY})", "ready"), (f"count (up{{job=\"{JOB}\"}} == 1)", "up"),
               (f"sum by (field) (rate({m.UNKNOWN_FIELDS}[{RATE}]))", "unknown {{field}}/s")], "short"),
        panel("Impression log", [(f"sum by (reason) (rate({m.LOG_DROPPED}[{RATE}]))", "dropped {{reason}}"),
                                 (f"sum (rate({m.LOG_RECORDS}[{RATE}]))", "written"),
                                 (f"max ({m.LOG_QUEUE_DEPTH})", "queue depth")], "short"),
    ]


def dashboard() -> dict:
    laid_out = []
    for i, p in enumerate(panels()):
        laid_out.append({"id": i + 1, "gridPos": {"x": (i % 2) * WIDTH, "y": (i // 2) * HEIGHT, "w": WIDTH,
                                                  "h": HEIGHT}, **p})
    variables = [
        {"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Prometheus"},
        {"name": "task", "type": "query", "datasource": DATASOURCE, "label": "head",
         "query": {"query": f"label_values({m.HEAD_SCORE}_count, task)", "refId": "task"},
         "definition": f"label_values({m.HEAD_SCORE}_count, task)", "includeAll": True, "multi": True,
         "refresh": 2},
    ]
    return {"uid": "ranker-overview", "title": "Ranker", "tags": ["ranker"], "timezone": "utc",
            "schemaVersion": 39, "version": 1, "editable": True, "refresh": "30s",
            "time": {"from": "now-6h", "to": "now"}, "templating": {"list": variables}, "panels": laid_out,
            "annotations": {"list": []}}
