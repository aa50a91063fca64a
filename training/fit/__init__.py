"""The training loop (train.py) and its progress output (progress.py)."""
