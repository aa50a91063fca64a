"""`ranker weights check`: validate a weights file exactly as a server loading it would.

The server parses the file (`parse_weights`: schema, weights, transforms, default profile,
experiments) and then compiles it against the model it serves (`compile_weights`: tasks exist,
normalizations have score statistics). This runs the same two functions against a bundle
directory or a registry's CURRENT version, so a config repository can gate changes in CI.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from service.contract.bundle import MANIFEST_FILE, Manifest, read_manifest
from service.profiles import CompiledWeights, WeightsError, compile_weights, parse_weights
from service.registry import Registry, RegistryError


class CheckTargetError(ValueError):
    """The model to check against cannot be read (no bundle, no CURRENT, ...)."""


@dataclass(frozen=True)
class CheckResult:
    compiled: CompiledWeights
    model: str  # e.g. "demo v3" or "bundle runs/demo-bundle"

    def summary(self, path: Path) -> str:
        file = self.compiled.weights.file
        lines = [f"ok: {path} fits {self.model}",
                 f"  default profile: {file.default_profile}",
                 f"  profiles: {', '.join(self.compiled.weights.profile_names)}"]
        if file.experiments is not None:
            e = file.experiments
            arms = ", ".join(f"{p} {s:.0%}" for p, s in e.arms.items())
            lines.append(f"  experiment {e.name!r} by user.{e.key}: {arms}; control "
                         f"({file.default_profile}) {1 - sum(e.arms.values()):.0%}")
        return "\n".join(lines)


def manifest_of(bundle: Path | None, registry: str | None, model: str | None) -> tuple[Manifest, str]:
    """The manifest to check against: a bundle directory, or CURRENT of a registry's model."""
    if (bundle is None) == (registry is None):
        raise CheckTargetError("give either --bundle DIR or --registry ROOT (with --model NAME)")
    if bundle is not None:
        return read_manifest(bundle), f"bundle {bundle}"
    try:
        if model is None:
            models = Registry.models(registry)
            if len(models) != 1:
                raise CheckTargetError(f"name the model with --model (models under {registry}: {models or 'none'})")
            model = models[0]
        reg = Registry(registry, model)
        version = reg.current()
        if version is None:
            raise CheckTargetError(f"{reg.location} has no CURRENT version to check against")
        data = reg.read_file(version, MANIFEST_FILE)
    except RegistryError as e:
        raise CheckTargetError(str(e)) from e
    if data is None:
        raise CheckTargetError(f"{reg.location} v{version} has no {MANIFEST_FILE}")
    return Manifest.model_validate_json(data), f"{model} v{version}"


def check_weights(path: Path, manifest: Manifest, model: str) -> CheckResult:
    """Parse and compile as the server does; raises WeightsError naming the key."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise WeightsError(f"{path}: cannot read it: {e}") from e
    return CheckResult(compile_weights(parse_weights(data, source=str(path)), manifest.tasks,
                                       auxiliary_tasks(manifest)), model)


def auxiliary_tasks(manifest: Manifest) -> list[str]:
    """The bundle's `serve: false` heads: in its model (model_args, to rebuild the torch model), not served."""
    served = set(manifest.task_names)
    return [t for t in manifest.model_args.get("tasks", []) if t not in served]
