"""Trained model -> verified bundle: ONNX export and parity (export.py), calibration maps (calibration.py),
report.md and its plots (report.py)."""
