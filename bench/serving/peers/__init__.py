"""Peer serving frameworks around the project's own model: bench/serving/peers/run.py (make bench-peers)."""
