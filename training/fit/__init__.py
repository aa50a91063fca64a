"""The training loop (train.py), its stopping rules (early_stopping.py: the criterion, each head's best
epoch, combining heads) and its progress output (progress.py)."""
