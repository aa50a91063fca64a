"""The ranker spec: one YAML file, validated by pydantic (docs/SPEC.md lists every key).

    schema.py   RankerSpec and its sections (features, tasks, model, train, eval, gates, ...)
    data.py     the `data:` section: where the logs are and how they are split
    model.py    the `model:` and `train:` sections; which arch keys mean something for which arch
    errors.py   validation errors that name the key and suggest the nearest valid one
    doc.py      docs/SPEC.md, generated from the schema
"""

from training.spec.data import DataConfig
from training.spec.schema import (
    CalibrationConfig,
    CategoricalFeature,
    EvalConfig,
    FeaturesConfig,
    GatesConfig,
    LookupConfig,
    LookupEntity,
    ModelConfig,
    NumericFeature,
    RankerSpec,
    SpecError,
    TaskConfig,
    TrainConfig,
    load_spec,
)

__all__ = ["CalibrationConfig", "CategoricalFeature", "DataConfig", "EvalConfig", "FeaturesConfig", "GatesConfig",
           "LookupConfig", "LookupEntity", "ModelConfig", "NumericFeature", "RankerSpec", "SpecError", "TaskConfig",
           "TrainConfig", "load_spec"]
