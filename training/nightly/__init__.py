"""The nightly retrain: the job (retrain.py), its promotion gates (gates.py, gate_report.py), warm starts
(warm_start.py) and the `ranker retrain` / `ranker registry` commands (cli.py)."""
