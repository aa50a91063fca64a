"""The torch model (model.py: MMoE and its baselines) and what trains it (losses.py: masked losses, balancing)."""
