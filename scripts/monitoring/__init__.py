"""The alert rules and the Grafana dashboard of deploy/monitoring/, generated from one source.

`python -m scripts.monitoring` rewrites deploy/monitoring/{rules.yml, prometheus-rule.yaml,
dashboard.json}; `--check` exits 1 when a committed file differs from what this code renders. The
rules and the panels take their metric names from `names.py`, which a test compares with what a
real server exports.
"""
