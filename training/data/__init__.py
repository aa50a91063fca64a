"""Interaction logs in, model-ready arrays out.

    tables.py        Parquet (file, directory, glob) -> validated table -> fitted encoders -> Encoded
    splits.py        train / valid / test: explicit files, a split column, by time, or seeded random
    requests.py      requests grouped by request_id value: sizes, warnings, ranking-metric groups
    demo.py          the built-in demo logs (hidden traits, clickbait, missing satisfaction labels)
"""

from training.data.tables import (
    DataError,
    Encoded,
    LabelScaler,
    dataset,
    encode,
    feature_inputs,
    fit_encoders,
    fit_label_scalers,
    load_table,
    raw_labels,
    request_index,
    validate,
)

__all__ = ["DataError", "Encoded", "LabelScaler", "dataset", "encode", "feature_inputs", "fit_encoders",
           "fit_label_scalers", "load_table", "raw_labels", "request_index", "validate"]
