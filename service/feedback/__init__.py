"""Feedback: the frontend's events (`POST /v1/feedback`), checked against the served model's declared
events and written durably beside the impression log (docs/OPERATIONS.md, "Feedback").

    events.py   the body -> one Arrow batch with FEEDBACK_SCHEMA; every problem a 422 naming its field
    log.py      FeedbackLog: appends a batch to the open segment and fsyncs before the 200; rolls to Parquet
    metrics.py  ranker_feedback_events_total{event}, rejected batches by reason, write failures
"""
