"""Feature tables by id: joined onto id-only logs for training (join.py), published for serving (cli.py)."""
