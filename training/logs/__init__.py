"""Impression log + feedback events -> the table `ranker train` reads (`ranker logs join`)."""
