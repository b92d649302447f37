"""The Kubernetes manifests as the cluster would get them: every overlay rendered with `kubectl kustomize`, every
object checked against the schema of its kind, and the rules an operator relies on checked across all of them."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from functools import cache
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
VALIDATOR = ROOT / "deploy" / "tools" / "validate"
OVERLAYS = ("dev", "prod")
SERVICES = ("customer", "billing-adapter", "ticketing", "churn", "campaign")
DEPLOYABLES = (*SERVICES, "gateway")
CONSUMERS = ("customer", "ticketing", "churn", "campaign")


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: the deployment checks need kubectl (with kustomize) and node")
    return path


@cache
def rendered_text(overlay: str) -> str:
    result = subprocess.run(
        [tool("kubectl"), "kustomize", str(K8S / "overlays" / overlay)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, f"kubectl kustomize overlays/{overlay} failed:\n{result.stderr}"
    return result.stdout


def rendered(overlay: str) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(rendered_text(overlay)) if doc]


def of_kind(objects: list[dict], kind: str) -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


@pytest.fixture(params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def objects(overlay: str) -> list[dict]:
    return rendered(overlay)


def test_every_object_matches_the_schema_of_its_kind(overlay: str) -> None:
    node = tool("node")
    if not (VALIDATOR / "node_modules").is_dir():
        pytest.fail("the schema validator is not installed: npm ci --prefix deploy/tools/validate")
    result = subprocess.run(
        [node, str(VALIDATOR / "validate.js")],
        input=rendered_text(overlay),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"overlays/{overlay}:\n{result.stderr}"


def test_the_validator_refuses_an_unknown_kind_and_a_malformed_object() -> None:
    node = tool("node")
    bad = "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n---\n"
    bad += "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec: {replicas: many}\n"
    result = subprocess.run(
        [node, str(VALIDATOR / "validate.js")], input=bad, capture_output=True, text=True, check=False
    )
    assert result.returncode != 0
    assert "no schema for apiVersion example.com/v1 kind Widget" in result.stderr
    assert "Deployment /d" in result.stderr


def test_every_deployment_is_probed_bounded_and_unprivileged(objects: list[dict]) -> None:
    deployments = of_kind(objects, "Deployment")
    assert set(deployments) == set(DEPLOYABLES)
    for name, deployment in deployments.items():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["automountServiceAccountToken"] is False, name
        for container in pod["containers"]:
            assert container["livenessProbe"]["httpGet"]["path"] == "/health/live", name
            assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready", name
            assert {"cpu", "memory"} <= set(container["resources"]["requests"]), name
            assert {"cpu", "memory"} <= set(container["resources"]["limits"]), name
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True, name
            assert security["allowPrivilegeEscalation"] is False, name
            assert security["capabilities"]["drop"] == ["ALL"], name
            image = container["image"]
            assert ":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest"), f"{name}: {image} is not pinned"


def test_the_services_migrate_by_job_not_at_start(objects: list[dict]) -> None:
    configs = of_kind(objects, "ConfigMap")
    jobs = of_kind(objects, "Job")
    for name in DEPLOYABLES:
        prefix = "CRM_" + name.upper().replace("-", "_")
        assert configs[f"{name}-config"]["data"][f"{prefix}_AUTO_MIGRATE"] == "false", name
        job = jobs[f"{name}-migrate"]
        container = job["spec"]["template"]["spec"]["containers"][0]
        assert container["command"] == ["crm", "migrate", "crm_" + name.replace("-", "_")], name
        assert "CRM_MIGRATE_DATABASE_URL" in {e["name"] for e in container["env"]}, name
        assert job["metadata"]["annotations"]["argocd.argoproj.io/hook"] in ("PreSync", "Sync"), name
        assert container["securityContext"]["readOnlyRootFilesystem"] is True, name


def test_every_deployable_has_its_companions(objects: list[dict]) -> None:
    for kind in ("ServiceAccount", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler", "NetworkPolicy"):
        assert set(DEPLOYABLES) <= set(of_kind(objects, kind)), kind
    for name, hpa in of_kind(objects, "HorizontalPodAutoscaler").items():
        assert hpa["apiVersion"] == "autoscaling/v2"
        external = {m["external"]["metric"]["name"] for m in hpa["spec"]["metrics"] if m["type"] == "External"}
        wanted = {"crm_" + name.replace("-", "_") + "_consumer_lag"} if name in CONSUMERS else set()
        assert external == wanted, name


def test_the_adapter_serves_every_lag_metric_the_autoscalers_ask_for(objects: list[dict]) -> None:
    config = yaml.safe_load(of_kind(objects, "ConfigMap")["prometheus-adapter-crm"]["data"]["config.yaml"])
    patterns = [rule["name"]["matches"] for rule in config["externalRules"]]
    for name in CONSUMERS:
        metric = "crm_" + name.replace("-", "_") + "_consumer_lag"
        assert any(re.fullmatch(p.strip("^$"), metric) for p in patterns), metric


def test_only_the_gateway_reaches_a_service(objects: list[dict]) -> None:
    policies = of_kind(objects, "NetworkPolicy")
    for name in SERVICES:
        policy = policies[name]["spec"]
        assert set(policy["policyTypes"]) == {"Ingress", "Egress"}
        for rule in policy["ingress"]:
            for peer in rule["from"]:
                labels = peer.get("podSelector", {}).get("matchLabels", {})
                namespace = peer.get("namespaceSelector", {}).get("matchLabels", {})
                from_gateway = labels.get("app.kubernetes.io/name") == "gateway" and not namespace
                from_monitoring = namespace == {"kubernetes.io/metadata.name": "monitoring"}
                assert from_gateway or from_monitoring, f"{name} admits {peer}"
        egress_ports = {p["port"] for rule in policy["egress"] for p in rule.get("ports", [])}
        assert {53, 5432, 9092} <= egress_ports, name


def test_one_database_per_deployable(objects: list[dict]) -> None:
    clusters = of_kind(objects, "Cluster")
    assert set(clusters) == {f"{name}-db" for name in DEPLOYABLES}
    secrets = {
        e["valueFrom"]["secretKeyRef"]["name"]
        for d in of_kind(objects, "Deployment").values()
        for e in d["spec"]["template"]["spec"]["containers"][0].get("env", [])
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    assert {f"{name}-db-app" for name in DEPLOYABLES} <= secrets
    assert not of_kind(objects, "Secret"), "secret values are never committed; the operator creates them"


def test_kafka_topics_are_those_of_the_contract(objects: list[dict]) -> None:
    contract = yaml.safe_load((ROOT / "contracts" / "topics.yaml").read_text(encoding="utf-8"))["topics"]
    topics = {t["spec"]["topicName"]: t["spec"] for t in of_kind(objects, "KafkaTopic").values()}
    assert set(topics) == set(contract) | {f"{name}.dlq" for name in contract}
    days = 86_400_000
    for name, declared in contract.items():
        assert topics[name]["partitions"] == declared["partitions"], name
        assert topics[name]["config"]["retention.ms"] == str(int(declared["retention"].rstrip("d")) * days), name
        assert topics[f"{name}.dlq"]["config"]["retention.ms"] == str(30 * days), name
    brokers = sum(
        p["spec"]["replicas"] for p in of_kind(objects, "KafkaNodePool").values() if "broker" in p["spec"]["roles"]
    )
    for name, spec in topics.items():
        assert spec["replicas"] <= brokers, f"{name}: {spec['replicas']} replicas on {brokers} brokers"
        assert int(spec["config"]["min.insync.replicas"]) <= max(spec["replicas"] - 1, 1), name


def test_the_committed_topics_are_a_fresh_run_of_the_generator() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "deploy" / "tools" / "kafka_topics.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_prod_runs_more_of_everything_than_dev() -> None:
    dev, prod = rendered("dev"), rendered("prod")
    for name in DEPLOYABLES:
        assert of_kind(prod, "Deployment")[name]["spec"]["replicas"] >= 3
        assert (
            of_kind(prod, "Deployment")[name]["spec"]["replicas"] > of_kind(dev, "Deployment")[name]["spec"]["replicas"]
        )
        assert of_kind(prod, "HorizontalPodAutoscaler")[name]["spec"]["minReplicas"] >= 3
        spread = of_kind(prod, "Deployment")[name]["spec"]["template"]["spec"]["topologySpreadConstraints"]
        assert {c["topologyKey"] for c in spread} == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}
    assert of_kind(dev, "KafkaNodePool")["dual-role"]["spec"]["replicas"] == 1
    assert of_kind(prod, "KafkaNodePool")["dual-role"]["spec"]["replicas"] >= 3
    for name, cluster in of_kind(prod, "Cluster").items():
        assert cluster["spec"]["instances"] >= 3, name
        assert of_kind(dev, "Cluster")[name]["spec"]["instances"] == 1, name
        assert [p["name"] for p in cluster["spec"]["plugins"]] == ["barman-cloud.cloudnative-pg.io"], name
    backed_up = {b["spec"]["cluster"]["name"] for b in of_kind(prod, "ScheduledBackup").values()}
    assert backed_up == set(of_kind(prod, "Cluster"))


def test_no_object_is_declared_twice(objects: list[dict]) -> None:
    keys = Counter((o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]) for o in objects)
    assert [k for k, n in keys.items() if n > 1] == []


def test_the_base_includes_the_monitoring_directory_when_it_is_there() -> None:
    listed = yaml.safe_load((K8S / "base" / "kustomization.yaml").read_text(encoding="utf-8"))["resources"]
    assert "monitoring" in listed
    if (K8S / "base" / "monitoring" / "kustomization.yaml").is_file():
        assert {"ServiceMonitor", "PrometheusRule"} <= {o["kind"] for o in rendered("prod")}
