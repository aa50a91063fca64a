"""deploy/: every Kubernetes manifest validates against the Kubernetes 1.30 JSON schemas (strict:
unknown fields are errors), the compose file against the Compose spec, and the pieces fit together
(probes on the V2 health routes, selectors, the CronJob's command line, the weights file)."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from typer.main import get_command

from training.cli import app
from training.spec import RankerSpec

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
K8S_VERSION = "1.30.0"


def documents() -> list[tuple[str, dict]]:
    return [(f.name, doc) for f in sorted(K8S.glob("*.yaml")) if f.name != "kustomization.yaml"
            for doc in yaml.safe_load_all(f.read_text()) if doc]


def by_kind(kind: str, name: str | None = None) -> dict:
    found = [d for _, d in documents() if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, (kind, name, len(found))
    return found[0]


@pytest.mark.parametrize(("file", "doc"), documents(), ids=lambda x: x if isinstance(x, str) else x["kind"])
def test_manifest_matches_the_kubernetes_schema(file: str, doc: dict) -> None:
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_the_validator_rejects_broken_manifests() -> None:
    deployment = by_kind("Deployment", "ranker")
    typo = copy.deepcopy(deployment)
    typo["spec"]["template"]["spec"]["containers"][0]["livenessProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(typo, K8S_VERSION, strict=True)
    wrong_type = copy.deepcopy(deployment)
    wrong_type["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(wrong_type, K8S_VERSION, strict=True)


def test_kustomization_lists_every_manifest() -> None:
    listed = yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"]
    assert sorted(listed) == sorted(f.name for f in K8S.glob("*.yaml") if f.name != "kustomization.yaml")


def test_server_probes_resources_and_weights_mount() -> None:
    pod = by_kind("Deployment", "ranker")["spec"]["template"]["spec"]
    c = pod["containers"][0]
    assert c["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert c["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert {"cpu", "memory"} <= set(c["resources"]["requests"]) and {"cpu", "memory"} <= set(c["resources"]["limits"])
    assert {"configMapRef": {"name": "ranker-config"}} in c["envFrom"]
    weights = next(v for v in pod["volumes"] if v["name"] == "weights")
    assert weights["configMap"]["name"] == "ranker-weights"
    mount = next(m for m in c["volumeMounts"] if m["name"] == "weights")
    assert "subPath" not in mount  # subPath mounts never see ConfigMap updates
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["RANKER_WEIGHTS_PATH"] == f"{mount['mountPath']}/weights.yaml"
    assert pod["securityContext"]["runAsNonRoot"] is True


def test_servers_log_where_the_nightly_join_reads() -> None:
    """The impression log and feedback land on the volume the CronJob's join reads, one writer per pod."""
    pod = by_kind("Deployment", "ranker")["spec"]["template"]["spec"]
    c = pod["containers"][0]
    env = {e["name"]: e for e in c["env"]}
    assert env["RANKER_REPLICA"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    data = next(v for v in pod["volumes"] if v["name"] == "data")["persistentVolumeClaim"]["claimName"]
    mount = next(m for m in c["volumeMounts"] if m["name"] == "data")
    assert not mount.get("readOnly") and env["RANKER_LOG_DIR"]["value"].startswith(mount["mountPath"] + "/")
    job = by_kind("CronJob", "ranker-retrain")["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    join = job["initContainers"][0]
    job_data = next(v for v in job["volumes"] if v["name"] == "data")["persistentVolumeClaim"]["claimName"]
    job_mount = next(m for m in join["volumeMounts"] if m["name"] == "data")["mountPath"]
    log_dir = env["RANKER_LOG_DIR"]["value"].replace(mount["mountPath"], job_mount, 1)
    assert data == job_data
    assert f"--impressions={log_dir}/impressions" in join["args"] and f"--feedback={log_dir}/feedback" in join["args"]


def test_selectors_connect_service_pdb_hpa_and_pods() -> None:
    deployment = by_kind("Deployment", "ranker")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert by_kind("Service", "ranker")["spec"]["selector"].items() <= labels.items()
    assert by_kind("PodDisruptionBudget")["spec"]["selector"]["matchLabels"].items() <= labels.items()
    hpa = by_kind("HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                             "name": deployment["metadata"]["name"]}
    assert hpa["spec"]["minReplicas"] >= 2  # with maxUnavailable 1 in the PDB, one replica always serves


def test_cronjob_runs_a_valid_retrain_command_one_at_a_time() -> None:
    cron = by_kind("CronJob", "ranker-retrain")
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    container = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    args = container["args"]
    assert args[0] == "retrain"
    # The real CLI parses the arguments (an unknown or misspelled option fails here).
    ctx = get_command(app).make_context("ranker", list(args), resilient_parsing=False, obj=None)
    retrain = ctx.command.get_command(ctx, "retrain")
    sub = retrain.make_context("retrain", list(args[1:]) + ["--registry", "/registry"])
    assert sub.params["last_days"] == 14
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert str(Path(args[1]).parent) in mounts


def test_cronjob_joins_the_log_before_the_retrain_into_the_specs_data() -> None:
    pod = by_kind("CronJob", "ranker-retrain")["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    join, retrain = pod["initContainers"][0], pod["containers"][0]
    args = join["args"]
    assert args[:2] == ["logs", "join"]
    ctx = get_command(app).make_context("ranker", list(args), resilient_parsing=False, obj=None)
    logs = ctx.command.get_command(ctx, "logs")
    sub_ctx = logs.make_context("logs", list(args[1:]))
    params = sub_ctx.command.get_command(sub_ctx, "join").make_context("join", list(args[2:])).params
    spec = yaml.safe_load(by_kind("ConfigMap", "ranker-spec")["data"]["spec.yaml"])
    assert params["out"] == Path(spec["data"]["path"]) and params["last_days"] == 2
    assert RankerSpec.model_validate(spec).feedback is not None
    data = {m["name"]: m for m in retrain["volumeMounts"]}["data"]
    assert data.get("readOnly") and not {m["name"]: m for m in join["volumeMounts"]}["data"].get("readOnly")


def test_the_canary_check_joins_then_checks_the_registry_it_can_write() -> None:
    cron = by_kind("CronJob", "ranker-canary-check")
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    join, check = pod["initContainers"][0], pod["containers"][0]
    ctx = get_command(app).make_context("ranker", list(join["args"]), resilient_parsing=False, obj=None)
    logs = ctx.command.get_command(ctx, "logs")
    sub = logs.make_context("logs", list(join["args"][1:]))
    joined = sub.command.get_command(sub, "join").make_context("join", list(join["args"][2:])).params["out"]
    args = check["args"]
    assert args[:2] == ["experiment", "canary-check"]
    ctx = get_command(app).make_context("ranker", list(args), resilient_parsing=False, obj=None)
    experiment = ctx.command.get_command(ctx, "experiment")
    sub = experiment.make_context("experiment", list(args[1:]))
    params = sub.command.get_command(sub, "canary-check").make_context(
        "canary-check", list(args[2:]) + ["--registry", "/registry"]).params
    assert params["joined"] == joined and params["abort_if_worse"]
    mounts = {m["name"]: m for m in check["volumeMounts"]}
    assert not mounts["registry"].get("readOnly") and "tmp" in {m["name"] for m in join["volumeMounts"]}
    assert {"configMapRef": {"name": "ranker-config"}} in check["envFrom"]


def test_config_maps_hold_a_valid_spec_and_the_repo_weights() -> None:
    spec = yaml.safe_load(by_kind("ConfigMap", "ranker-spec")["data"]["spec.yaml"])
    RankerSpec.model_validate(spec)
    weights = yaml.safe_load(by_kind("ConfigMap", "ranker-weights")["data"]["weights.yaml"])
    assert weights == yaml.safe_load((REPO / "configs" / "weights.yaml").read_text())


def test_compose_file_matches_the_compose_spec(tmp_path: Path) -> None:
    compose = REPO / "deploy" / "compose.yaml"
    ok = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec",
                         str(compose)], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    broken = tmp_path / "compose.yaml"
    doc = yaml.safe_load(compose.read_text())
    doc["services"]["server"]["restart"] = ["always"]
    broken.write_text(yaml.safe_dump(doc))
    bad = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec",
                          str(broken)], capture_output=True, text=True)
    assert bad.returncode != 0


def test_dockerfile_serve_target_is_slim_non_root_and_health_checked() -> None:
    text = (REPO / "Dockerfile").read_text()
    stages = {line.split(" AS ")[1].strip(): i for i, line in enumerate(text.splitlines())
              if line.startswith("FROM ") and " AS " in line}
    assert {"serve", "train"} <= stages.keys()
    serve = "\n".join(text.splitlines()[stages["serve"]:stages["train"]])
    assert "[${SERVE_EXTRAS}]" in serve and "ARG SERVE_EXTRAS=serve\n" in serve
    assert "USER ranker" in serve and "/v2/health/live" in serve and 'CMD ["ranker-serve"]' in serve
    assert "constraints.txt" in "\n".join(text.splitlines()[stages["train"]:])


def test_every_ranker_variable_in_the_manifests_is_a_server_setting() -> None:
    from service.settings import ENV_PREFIX, Settings

    known = {f"{ENV_PREFIX}{name.upper()}" for name in Settings.model_fields}
    container = by_kind("Deployment", "ranker")["spec"]["template"]["spec"]["containers"][0]
    used = set(by_kind("ConfigMap", "ranker-config")["data"]) | {e["name"] for e in container["env"]}
    compose = yaml.safe_load((REPO / "deploy" / "compose.yaml").read_text())
    used |= set(compose["services"]["server"]["environment"])
    assert {n for n in used if n.startswith(ENV_PREFIX)} <= known


def test_the_redis_feature_store_is_wired_in_kubernetes_and_compose() -> None:
    config = by_kind("ConfigMap", "ranker-config")["data"]
    assert config["RANKER_FEATURE_STORE"] == "redis"
    host, port = config["RANKER_REDIS_URL"].removeprefix("redis://").split("/")[0].split(":")
    service = by_kind("Service", host)
    assert int(port) in [p["port"] for p in service["spec"]["ports"]]
    redis_pods = by_kind("Deployment", "ranker-redis")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= redis_pods.items()
    ranker_pods = by_kind("Deployment", "ranker")["spec"]["template"]["metadata"]["labels"]
    assert not service["spec"]["selector"].items() <= ranker_pods.items()  # never routes to the rankers
    compose = yaml.safe_load((REPO / "deploy" / "compose.yaml").read_text())
    server = compose["services"]["server"]
    assert server["environment"]["RANKER_REDIS_URL"].startswith("redis://redis:")
    assert "redis" in compose["services"] and "redis" in server["depends_on"]
    from service.settings import Settings

    Settings(**{k.removeprefix("RANKER_").lower(): v for k, v in config.items()})  # every value is valid


# Multi-node training (deploy/k8s/distributed): a Kubeflow PyTorchJob and the CronJob that creates it.
DISTRIBUTED = K8S / "distributed"


def pytorchjob() -> dict:
    return yaml.safe_load((DISTRIBUTED / "pytorchjob.yaml").read_text())


def test_pytorchjob_matches_the_operator_types() -> None:
    from kubeflow_schema import validate_pytorchjob

    validate_pytorchjob(pytorchjob())


def test_the_pytorchjob_check_rejects_broken_jobs() -> None:
    from kubeflow_schema import SchemaError, validate_pytorchjob

    typo = pytorchjob()
    typo["spec"]["pytorchReplicaSpecs"]["Worker"]["replica"] = 3
    with pytest.raises(SchemaError, match="replica"):
        validate_pytorchjob(typo)
    wrong_type = pytorchjob()
    wrong_type["spec"]["runPolicy"]["backoffLimit"] = "none"
    with pytest.raises(SchemaError, match="backoffLimit"):
        validate_pytorchjob(wrong_type)
    bad_pod = pytorchjob()
    bad_pod["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"][0]["comand"] = ["x"]
    with pytest.raises(kubernetes_validate.ValidationError):
        validate_pytorchjob(bad_pod)


def test_pytorchjob_runs_torchrun_with_c10d_and_a_valid_retrain(monkeypatch: pytest.MonkeyPatch) -> None:
    from torch.distributed.run import get_args_parser

    replicas = pytorchjob()["spec"]["pytorchReplicaSpecs"]
    assert replicas["Master"]["replicas"] == 1 and replicas["Worker"]["replicas"] >= 1
    assert {r["restartPolicy"] for r in replicas.values()} == {"Never"}
    for replica in replicas.values():
        container = replica["template"]["spec"]["containers"][0]
        assert container["name"] == "pytorch"  # the operator injects its env into this container
        assert container["command"] == ["python", "-m", "torch.distributed.run"]
        run = get_args_parser().parse_args(container["args"])
        assert run.rdzv_backend == "c10d" and run.rdzv_endpoint == "$(MASTER_ADDR):$(MASTER_PORT)"
        assert run.module and run.training_script == "training.cli"
        args = run.training_script_args
        assert args[0] == "retrain"
        env = {e["name"]: e.get("value") for e in container["env"]}
        monkeypatch.setenv("RANKER_REGISTRY_ROOT", env["RANKER_REGISTRY_ROOT"])  # the pod's registry
        ctx = get_command(app).make_context("ranker", list(args), resilient_parsing=False, obj=None)
        sub = ctx.command.get_command(ctx, "retrain").make_context("retrain", list(args[1:]))
        assert sub.params["registry"].startswith("s3://") and sub.params["data"].startswith("s3://")
        assert {"secretRef": {"name": "ranker-s3"}} in container["envFrom"]


def test_nightly_cronjob_creates_the_pytorchjob_with_least_privilege() -> None:
    docs = [d for d in yaml.safe_load_all((DISTRIBUTED / "nightly.yaml").read_text()) if d]
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    kinds = {d["kind"]: d for d in docs}
    assert kinds["Role"]["rules"] == [{"apiGroups": ["kubeflow.org"], "resources": ["pytorchjobs"],
                                       "verbs": ["create", "get", "list"]}]
    pod = kinds["CronJob"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == kinds["ServiceAccount"]["metadata"]["name"]
    assert pod["containers"][0]["args"] == ["create", "-f", "/etc/ranker-pytorchjob/pytorchjob.yaml"]
    kustomization = yaml.safe_load((DISTRIBUTED / "kustomization.yaml").read_text())
    generated = kustomization["configMapGenerator"][0]
    assert generated["name"] == pod["volumes"][0]["configMap"]["name"] and generated["files"] == ["pytorchjob.yaml"]
    assert "generateName" in pytorchjob()["metadata"]  # `kubectl create` each night gives a new name
    assert by_kind("CronJob", "ranker-retrain")["metadata"]["name"] != kinds["CronJob"]["metadata"]["name"]
