"""Scoring a trained model or a bundle: natural-unit predictions (inference.py), metrics (metrics.py),
`ranker evaluate` (evaluate.py)."""
