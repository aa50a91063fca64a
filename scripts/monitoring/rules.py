"""The alert rules: one list of `Alert`s rendered as a Prometheus rules file and as a kube-prometheus
`PrometheusRule` whose `spec` is that same document.

Every expression is written with `{w}` for its rate window; `Timing` fills it in (and may shorten
every `for:`), so the end-to-end test runs these very rules against a real Prometheus in seconds.
Thresholds are module constants, stated in docs/OPERATIONS.md ("When an alert fires").
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from scripts.monitoring import names as m

GROUP = "ranker"
JOB = "ranker"  # the scrape job of the servers (deploy/monitoring/prometheus.yml; a ServiceMonitor's Service name)
RUNBOOK = "docs/OPERATIONS.md"  # --runbook-base puts your repository's URL in front of each anchor
# Thresholds
ERROR_RATIO = 0.01  # 5xx share of /v1/rank answers
LATENCY_SLO_SECONDS = 0.05  # p99 of answered (200) requests
DEFAULTED_SHARE = 0.05  # of a feature's values scored
CLIPPED_SHARE = 0.05
UNKNOWN_FIELD_SHARE = 0.01  # of scored requests carrying one unknown field
STORE_ERROR_RATIO = 0.01  # of feature-store reads
MISS_RATIO = 0.2  # of ids looked up
MODEL_AGE_HOURS = 36  # the nightly retrain promotes every 24 h


@dataclass(frozen=True)
class Alert:
    name: str
    expr: str  # PromQL, `{w}` = the rate window
    for_: str
    severity: str  # page | ticket
    summary: str
    description: str

    @property
    def anchor(self) -> str:
        """The heading `### <name>` of docs/OPERATIONS.md as GitHub renders its id."""
        return github_anchor(self.name)


@dataclass(frozen=True)
class Timing:
    """Rate windows and `for:` durations. Production: the defaults; tests: seconds."""

    window: str = "5m"
    for_: str | None = None  # None: each alert's own


def github_anchor(heading: str) -> str:
    """GitHub's heading id: lower case, punctuation but `-` and `_` dropped, spaces to `-`."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def feature_share(counter: str, window: str = "{w}") -> str:
    """A feature's defaulted (or clipped) values over the values of it scored: candidates for an item
    feature, requests for a user or context one (ranker_feature_info says which). Rules and panels."""
    scored = (f"(max by (job, feature) ({m.FEATURE_INFO}{{source=\"item\"}} == 1)"
              f" * on (job) group_left() sum by (job) (rate({m.CANDIDATES}_sum[{window}]))"
              f" or max by (job, feature) ({m.FEATURE_INFO}{{source!=\"item\"}} == 1)"
              f" * on (job) group_left() sum by (job) (rate({m.CANDIDATES}_count[{window}])))")
    return f"sum by (job, feature) (rate({counter}[{window}])) / on (job, feature) {scored}"


ALERTS: tuple[Alert, ...] = (
    Alert("RankerHighErrorRatio",
          f"sum by (job) (rate({m.REQUESTS}{{status=~\"5..\"}}[{{w}}])) / sum by (job) (rate({m.REQUESTS}[{{w}}]))"
          f" > {ERROR_RATIO}",
          "5m", "page", f"More than {ERROR_RATIO:.0%} of /v1/rank requests fail with a 5xx",
          "{{ $value | humanizePercentage }} of /v1/rank answers of job {{ $labels.job }} were 5xx over the "
          "window: 500 (a bug or a non-finite score), 503 (not ready, overloaded, or the feature store down "
          "with RANKER_FEATURE_ON_ERROR=closed)."),
    Alert("RankerLatencyP99AboveSLO",
          f"histogram_quantile(0.99, sum by (job, le) (rate({m.REQUEST_DURATION}_bucket{{status=\"200\"}}[{{w}}])))"
          f" > {LATENCY_SLO_SECONDS}",
          "10m", "page", f"p99 latency of /v1/rank above the {LATENCY_SLO_SECONDS * 1000:.0f} ms SLO",
          "The 99th percentile of answered /v1/rank requests of job {{ $labels.job }} is "
          "{{ $value | humanizeDuration }} (SLO: " f"{LATENCY_SLO_SECONDS * 1000:.0f} ms)."),
    Alert("RankerNotReady", f"{m.READY} == 0", "5m", "page", "A ranker process serves no model",
          "{{ $labels.instance }} has no verified model with valid weights (GET /v2/health/ready is 503): "
          "its load balancer sends it nothing, and the others carry its traffic."),
    Alert("RankerTargetDown", f"up{{job=\"{JOB}\"}} == 0", "2m", "page", "Prometheus cannot scrape a ranker",
          "{{ $labels.instance }} has not answered GET /metrics: the process is down, hung, or unreachable."),
    Alert("RankerNonFiniteScore", f"increase({m.NON_FINITE}[{{w}}]) > 0", "0m", "page",
          "The model produced a NaN or infinite score",
          "{{ $labels.instance }} refused {{ $value | humanize }} requests (500, non_finite_score) because the "
          "served model scored a candidate with a NaN or an infinity."),
    Alert("RankerFeatureDefaulted", f"{feature_share(m.DEFAULTED)} > {DEFAULTED_SHARE}", "15m", "ticket",
          "Feature {{ $labels.feature }} is missing from many requests",
          "{{ $value | humanizePercentage }} of the values of {{ $labels.feature }} were missing and scored "
          "with the training default (ranker_features_defaulted_total): a client stopped sending it, or "
          "the feature store does not have it."),
    Alert("RankerFeatureClipped", f"{feature_share(m.CLIPPED)} > {CLIPPED_SHARE}", "15m", "ticket",
          "Feature {{ $labels.feature }} is often outside its training range",
          "{{ $value | humanizePercentage }} of the values of {{ $labels.feature }} were outside the range "
          "training saw and clipped to it (ranker_features_clipped_total): usually a unit change in a client."),
    Alert("RankerUnknownRequestField",
          f"sum by (job, field) (rate({m.UNKNOWN_FIELDS}[{{w}}])) / on (job) group_left() "
          f"sum by (job) (rate({m.CANDIDATES}_count[{{w}}])) > {UNKNOWN_FIELD_SHARE}",
          "15m", "ticket", "Requests carry a field the model does not read: {{ $labels.field }}",
          "{{ $value | humanizePercentage }} of scored requests carry {{ $labels.field }}, which the model "
          "does not read: a client typo of a feature name, whose feature is then defaulted."),
    Alert("RankerFeatureStoreErrors",
          f"sum by (job, entity) (rate({m.FS_ERRORS}[{{w}}])) / sum by (job, entity) "
          f"(rate({m.FS_DURATION}_count[{{w}}])) > {STORE_ERROR_RATIO}",
          "2m", "page", "Feature-store reads for {{ $labels.entity }} features fail",
          "{{ $value | humanizePercentage }} of the {{ $labels.entity }} feature-store reads failed (outage "
          "or timeout): requests are scored with model defaults (fail-open) or refused with 503 (fail-closed)."),
    Alert("RankerFeatureStoreMissRatio",
          f"sum by (job, entity) (rate({m.FS_MISSES}[{{w}}])) / sum by (job, entity) (rate({m.FS_LOOKUPS}[{{w}}]))"
          f" > {MISS_RATIO}",
          "15m", "ticket", "Many {{ $labels.entity }} ids are not in the feature store",
          "{{ $value | humanizePercentage }} of the {{ $labels.entity }} ids looked up were not found and "
          "scored with model defaults: the store is stale, empty, or keyed for another model."),
    Alert("RankerWeightsReloadRefused", f"max by (job, instance) ({m.WEIGHTS_REFUSED}) == 1", "1m", "ticket",
          "weights.yaml was refused; the last good weights still serve",
          "{{ $labels.instance }} refused the current weights.yaml (ranker_weights_refused = 1) and keeps "
          "scoring with the last file it accepted; the server log has the offending key."),
    Alert("RankerModelRefused", f"max by (job, instance) ({m.MODEL_REFUSED}) == 1", "5m", "ticket",
          "A ranker refused the model version it should serve",
          "{{ $labels.instance }} refused the version CURRENT names (ranker_model_refused = 1: sha256, parity, "
          "or tasks that do not fit the weights) and keeps serving the previous model."),
    Alert("RankerModelTooOld",
          f"(time() - max by (job, instance) ({m.MODEL_CREATED})) / 3600 > {MODEL_AGE_HOURS}",
          "10m", "ticket", f"The served model is older than {MODEL_AGE_HOURS} h",
          "{{ $labels.instance }} serves a model created {{ $value | humanize }} hours ago: the nightly "
          "retrain has not promoted a new version (failed, rejected by its gates, or not running)."),
    Alert("RankerImpressionLogDrops", f"sum by (job, reason) (increase({m.LOG_DROPPED}[{{w}}])) > 0", "5m", "ticket",
          "The impression log is losing records ({{ $labels.reason }})",
          "{{ $value | humanize }} ranked responses were not logged over the window (reason "
          "{{ $labels.reason }}): rankings are unaffected, but the retrain will not see them."),
    Alert("RankerCanaryWorse", f"max by (job) ({m.CANARY_CHECK_FAILING}) > 0", "1m", "page",
          "The running canary failed its check against CURRENT",
          "The last `ranker experiment canary-check` of the running canary found it worse than CURRENT on a guarded "
          "task, or users split off its share (a sample-ratio mismatch): the users it serves get worse rankings."),
)


def rule(alert: Alert, timing: Timing, runbook_base: str) -> dict:
    return {"alert": alert.name, "expr": alert.expr.replace("{w}", timing.window),
            "for": timing.for_ or alert.for_, "labels": {"severity": alert.severity},
            "annotations": {"summary": alert.summary, "description": alert.description,
                            "runbook_url": f"{runbook_base}#{alert.anchor}"}}


def rules_file(timing: Timing = Timing(), runbook_base: str = RUNBOOK) -> dict:
    """The Prometheus rules file (`rule_files:`), as a document."""
    return {"groups": [{"name": GROUP, "rules": [rule(a, timing, runbook_base) for a in ALERTS]}]}


def prometheus_rule(runbook_base: str = RUNBOOK) -> dict:
    """The same rules for the Prometheus operator; the labels match kube-prometheus's default ruleSelector."""
    return {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
            "metadata": {"name": "ranker", "namespace": "ranker",
                         "labels": {"app.kubernetes.io/name": "ranker", "prometheus": "k8s", "role": "alert-rules"}},
            "spec": rules_file(Timing(), runbook_base)}
