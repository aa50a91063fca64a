"""The metric names the rules and the dashboard use: the server's (service/metrics.py,
service/feature_store/metrics.py, service/impressions/metrics.py) as a scrape shows them."""

from __future__ import annotations

# Counters (exported with _total)
REQUESTS = "ranker_requests_total"
PROFILE_REQUESTS = "ranker_profile_requests_total"
NON_FINITE = "ranker_non_finite_scores_total"
DEFAULTED = "ranker_features_defaulted_total"
CLIPPED = "ranker_features_clipped_total"
UNKNOWN_FIELDS = "ranker_request_unknown_fields_total"
MODEL_LOADS = "ranker_model_loads_total"
WEIGHTS_RELOADS = "ranker_weights_reloads_total"
FS_LOOKUPS = "ranker_feature_lookups_total"
FS_MISSES = "ranker_feature_misses_total"
FS_ERRORS = "ranker_feature_store_errors_total"
LOG_DROPPED = "ranker_log_dropped_total"
LOG_RECORDS = "ranker_log_records_total"

# Histograms (the name without _bucket/_sum/_count)
REQUEST_DURATION = "ranker_request_duration_seconds"
INFERENCE_DURATION = "ranker_inference_duration_seconds"
CANDIDATES = "ranker_candidates_per_request"
HEAD_SCORE = "ranker_head_score"
FS_DURATION = "ranker_feature_lookup_duration_seconds"

# Gauges
READY = "ranker_ready"
MODEL_INFO = "ranker_model_info"
MODEL_REFUSED = "ranker_model_refused"
MODEL_CREATED = "ranker_model_created_timestamp_seconds"
FEATURE_INFO = "ranker_feature_info"
HEAD_SCORE_TRAINING = "ranker_head_score_training"
WEIGHTS_GENERATION = "ranker_weights_generation"
WEIGHTS_REFUSED = "ranker_weights_refused"
FS_SNAPSHOT_VERSION = "ranker_feature_snapshot_version"
LOG_QUEUE_DEPTH = "ranker_log_queue_depth"
CANARY_CHECK_FAILING = "ranker_canary_check_failing"
