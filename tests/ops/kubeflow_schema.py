"""A strict check of a Kubeflow Training Operator PyTorchJob against the operator's own API types, as
the `kubeflow-training` package (the operator's Python SDK, generated from its OpenAPI spec) ships
them: every field must be one the type declares, with a value of the declared type. The Kubernetes
types inside (object metadata, pod templates) are checked against the Kubernetes JSON schemas by
kubernetes_validate, strict as the other manifests."""

from __future__ import annotations

import re

import kubeflow.training.models as kf
import kubernetes_validate

K8S_VERSION = "1.30.0"
PRIMITIVES = {"str": str, "int": int, "bool": bool, "float": (int, float), "object": object}
# Kubernetes types the operator's types embed, checked as a document of this kind: (kind, field).
K8S_WRAPPED = {"V1ObjectMeta": ("ConfigMap", "metadata"), "V1PodTemplateSpec": ("PodTemplate", "template")}


class SchemaError(ValueError):
    pass


def validate_pytorchjob(doc: dict) -> None:
    """Raise SchemaError (or kubernetes_validate.ValidationError) naming the first field that does not fit."""
    if (doc.get("apiVersion"), doc.get("kind")) != ("kubeflow.org/v1", "PyTorchJob"):
        raise SchemaError(f"not a kubeflow.org/v1 PyTorchJob: {doc.get('apiVersion')} {doc.get('kind')}")
    _check(doc, "KubeflowOrgV1PyTorchJob", "")


def _check(value: object, type_name: str, path: str) -> None:
    if m := re.fullmatch(r"list\[(.+)\]", type_name):
        _expect(value, list, path)
        for i, item in enumerate(value):
            _check(item, m[1], f"{path}[{i}]")
    elif m := re.fullmatch(r"dict\((\w+), (.+)\)", type_name):
        _expect(value, dict, path)
        for key, item in value.items():
            _check(item, m[2], f"{path}.{key}")
    elif type_name in PRIMITIVES:
        _expect(value, PRIMITIVES[type_name], path)
    elif type_name in K8S_WRAPPED:
        kind, field = K8S_WRAPPED[type_name]
        meta = {} if field == "metadata" else {"metadata": {"name": "check"}}
        kubernetes_validate.validate({"apiVersion": "v1", "kind": kind, **meta, field: value}, K8S_VERSION, strict=True)
    else:
        model = getattr(kf, type_name)
        _expect(value, dict, path)
        fields = {json_name: model.openapi_types[attr] for attr, json_name in model.attribute_map.items()}
        for key, item in value.items():
            if key not in fields:
                raise SchemaError(f"{path or '<root>'}: {type_name} has no field {key!r} (it has {sorted(fields)})")
            _check(item, fields[key], f"{path}.{key}")


def _expect(value: object, types: type | tuple, path: str) -> None:
    if not isinstance(value, types) or (types is int and isinstance(value, bool)):
        raise SchemaError(f"{path}: expected {types}, got {type(value).__name__} {value!r}")
