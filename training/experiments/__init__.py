"""Experiments read from the joined log: `ranker experiment report` (weights arms and model canaries)."""
