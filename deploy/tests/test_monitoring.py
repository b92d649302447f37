"""The monitoring in deploy/: rules and config Prometheus accepts, metrics the code really defines, generated
Kubernetes objects in step with their source, and — the test that matters — a real Prometheus scraping the real dev
stack, evaluating every rule without error and seeing every metric the rules and dashboards read."""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from crm_kit.broker import free_port
from crm_kit.devstack import DevStackSettings, stack
from crm_kit.observability import service_metrics

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "deploy" / "monitoring"
ALERTS = MONITORING / "alerts.yaml"
CONFIG = MONITORING / "prometheus.yml"
DASHBOARDS = MONITORING / "dashboards"
RUNBOOK = ROOT / "deploy" / "RUNBOOK.md"
GENERATOR = ROOT / "deploy" / "tools" / "monitoring_objects.py"
K8S_MONITORING = ROOT / "deploy" / "k8s" / "base" / "monitoring"

APPS = stack(DevStackSettings())
"""Every process of the stack, as `make run` starts them: each must be scraped."""
SERVICES = tuple(app.name for app in APPS)
PROMETHEUS_SERIES = {"up"}
"""Series Prometheus makes itself for every target."""
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "info": ("_info",),
}


# --- metric names in PromQL --------------------------------------------------------------------------------------

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_LABEL_LIST = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_NAME = re.compile(r"(?<![\w.$])([a-zA-Z_:][\w:]*)(?![\w:]|\s*\()")
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset"}
_KEYWORDS |= {"atan2", "inf", "nan"}
_NAME_MATCHER = re.compile(r'__name__\s*=\s*"([^"]+)"')


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads: what is left once strings, label matchers, ranges, grouping
    label lists, function names and keywords are taken out (`{__name__="x"}` counts as x)."""
    names = set(_NAME_MATCHER.findall(expr))
    text = _STRING.sub('""', expr)
    text = _MATCHERS.sub("", text)
    text = _RANGE.sub("", text)
    text = _LABEL_LIST.sub("", text)
    return names | {n for n in _NAME.findall(text) if n.lower() not in _KEYWORDS}


def test_metric_names_are_read_from_promql_as_prometheus_would():
    expr = (
        'sum by (service, le) (rate(crm_customer_http_request_duration_seconds_bucket{route!~"/health/.*"}[5m]))'
        " / on (service) group_left (x) max_over_time(a:b:c[7d:1m] offset 1h) > bool 0.5"
        ' unless {__name__="crm_gateway_circuit_state"} or label_replace(up, "s", "${1}", "job", "(.*)")'
        " and time() - 26 * 3600"
    )
    assert metric_names(expr) == {
        "crm_customer_http_request_duration_seconds_bucket",
        "a:b:c",
        "crm_gateway_circuit_state",
        "up",
    }


# --- what the rules and dashboards read -------------------------------------------------------------------------


def rule_groups() -> list[dict[str, Any]]:
    return yaml.safe_load(ALERTS.read_text())["groups"]


def rules() -> Iterator[dict[str, Any]]:
    for group in rule_groups():
        yield from group["rules"]


def dashboards() -> dict[str, dict[str, Any]]:
    return {path.name: json.loads(path.read_text()) for path in sorted(DASHBOARDS.glob("*.json"))}


def dashboard_expressions(dashboard: dict[str, Any]) -> Iterator[str]:
    """Every panel target's expression and every template variable's metric."""
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            yield target["expr"]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            match = re.fullmatch(r"label_values\((.+),\s*\w+\)", variable["query"]["query"])
            assert match, variable
            yield match.group(1)


def recorded() -> dict[str, set[str]]:
    """Recorded series → the metric names their expressions read."""
    sources: dict[str, set[str]] = {}
    for rule in rules():
        if "record" in rule:
            sources.setdefault(rule["record"], set()).update(metric_names(rule["expr"]))
    return sources


def referenced() -> dict[str, set[str]]:
    """Metric name → where it is read (rules and dashboards)."""
    where: dict[str, set[str]] = {}
    for rule in rules():
        for name in metric_names(rule["expr"]):
            where.setdefault(name, set()).add(rule.get("alert") or rule["record"])
    for file, dashboard in dashboards().items():
        for expr in dashboard_expressions(dashboard):
            for name in metric_names(expr):
                where.setdefault(name, set()).add(file)
    return where


def code_metrics() -> dict[str, tuple[str, str]]:
    """Sample name → (family name, type) of every metric the services and the gateway define: their app modules
    imported (which registers their module-level instruments) and the kit's per-service set made for each."""
    for app in APPS:
        importlib.import_module(app.factory.partition(":")[0])
    for service in SERVICES:
        service_metrics(service)
    samples = {}
    for family in REGISTRY.collect():
        if family.name.startswith("crm_"):
            for suffix in SUFFIXES[family.type]:
                samples[family.name + suffix] = (family.name, family.type)
    return samples


# --- static checks -----------------------------------------------------------------------------------------------


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert shutil.which("promtool"), "promtool is needed (Debian/Ubuntu: apt-get install prometheus)"
    return subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=60, check=False)


def test_promtool_accepts_the_rules():
    result = promtool("check", "rules", str(ALERTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_accepts_the_config_and_its_rule_file():
    result = promtool("check", "config", str(CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    assert yaml.safe_load(CONFIG.read_text())["rule_files"] == [ALERTS.name]


def test_every_process_of_the_stack_has_a_scrape_job_labelled_with_its_service():
    jobs = yaml.safe_load(CONFIG.read_text())["scrape_configs"]
    labelled = [target["labels"]["service"] for job in jobs for target in job["static_configs"]]
    assert sorted(labelled) == sorted(SERVICES)


def test_every_metric_read_by_a_rule_or_a_dashboard_is_defined_in_the_code():
    defined = code_metrics()
    records = recorded()
    unknown = {
        name: sorted(where)
        for name, where in referenced().items()
        if name not in defined and name not in records and name not in PROMETHEUS_SERIES
    }
    assert not unknown, f"read but defined neither in the code nor by a recording rule: {unknown}"


def test_each_per_service_recording_reads_the_metrics_of_the_service_it_labels():
    for rule in rules():
        service = rule.get("labels", {}).get("service")
        if "record" in rule and service:
            prefix = f"crm_{service.replace('-', '_')}_"
            assert all(n.startswith(prefix) for n in metric_names(rule["expr"])), (service, rule["expr"])


def test_every_alert_has_a_severity_a_summary_a_description_and_a_runbook_section():
    headings = {
        _anchor(line.lstrip("#").strip()) for line in RUNBOOK.read_text().splitlines() if line.startswith("## ")
    }
    alerts = [rule for rule in rules() if "alert" in rule]
    assert alerts
    for alert in alerts:
        assert alert["labels"]["severity"] in {"critical", "warning"}, alert["alert"]
        annotations = alert["annotations"]
        assert annotations["summary"] and annotations["description"], alert["alert"]
        page, _, anchor = annotations["runbook_url"].partition("#")
        assert page == "deploy/RUNBOOK.md", alert["alert"]
        assert anchor == _anchor(alert["alert"]) and anchor in headings, f"no runbook section for {alert['alert']}"


def _anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


def test_dashboards_take_their_datasource_from_a_variable():
    for file, dashboard in dashboards().items():
        variables = {v["name"]: v for v in dashboard["templating"]["list"]}
        assert variables["DS_PROMETHEUS"]["type"] == "datasource", file
        assert variables["DS_PROMETHEUS"]["query"] == "prometheus", file
        ids = [panel["id"] for panel in dashboard["panels"]]
        assert len(ids) == len(set(ids)), f"{file}: panel ids repeat"
        for panel in dashboard["panels"]:
            if panel["type"] != "row":
                assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}", (file, panel["title"])
                assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24, (file, panel["title"])
                assert all(t["datasource"]["uid"] == "${DS_PROMETHEUS}" for t in panel["targets"]), file


def test_the_committed_kubernetes_objects_are_what_the_generator_makes(tmp_path):
    subprocess.run([sys.executable, str(GENERATOR), "--out", str(tmp_path)], check=True, timeout=60)
    fresh = {p.name: p.read_text() for p in tmp_path.iterdir()}
    committed = {p.name: p.read_text() for p in K8S_MONITORING.iterdir()}
    assert committed.keys() == fresh.keys()
    stale = [name for name in fresh if committed[name] != fresh[name]]
    assert not stale, f"run deploy/tools/monitoring_objects.py: {stale} differ"


def test_the_kubernetes_objects_monitor_every_service_with_the_same_rules_and_dashboards():
    documents = [
        doc for path in sorted(K8S_MONITORING.glob("*.yaml")) for doc in yaml.safe_load_all(path.read_text()) if doc
    ]
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for doc in documents:
        by_kind.setdefault(doc["kind"], []).append(doc)
    (kustomization,) = by_kind["Kustomization"]
    listed = {p.name for p in K8S_MONITORING.glob("*.yaml")} - {"kustomization.yaml"}
    assert sorted(kustomization["resources"]) == sorted(listed)
    selected = []
    for monitor in by_kind["ServiceMonitor"]:
        (endpoint,) = monitor["spec"]["endpoints"]
        assert endpoint["port"] == "http" and endpoint["path"] == "/metrics"
        assert [r["targetLabel"] for r in endpoint["relabelings"]] == ["service"], "the label the rules group by"
        selected.append(monitor["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"])
    assert sorted(selected) == sorted(SERVICES)
    (rule,) = by_kind["PrometheusRule"]
    assert rule["spec"]["groups"] == rule_groups()
    maps = by_kind["ConfigMap"]
    assert all(m["metadata"]["labels"]["grafana_dashboard"] == "1" for m in maps)
    shipped = {key: json.loads(value) for m in maps for key, value in m["data"].items()}
    assert shipped == dashboards()


# --- the real thing ----------------------------------------------------------------------------------------------


@pytest.mark.timeout(420)
def test_a_real_prometheus_scrapes_the_dev_stack_and_evaluates_every_rule(tmp_path):
    """Every target up, every rule group evaluated with no error, every dashboard query answered, every metric read
    present in Prometheus — or, for a labelled metric that has had no event yet (no dead letter, no SLA breach, no
    trained model in a demo), declared in its service's scrape by HELP and TYPE with no sample, which proves the
    name is right (prometheus_client exports those lines for a labelled metric before its first child)."""
    assert shutil.which("prometheus"), "prometheus is needed (Debian/Ubuntu: apt-get install prometheus)"
    ports = {name: free_port() for name in ("KAFKA", *(s.upper().replace("-", "_") for s in SERVICES))}
    env = {
        **os.environ,
        "CRM_DEV_VAR_DIR": str(tmp_path / "var"),
        "CRM_DEV_DEMO_CUSTOMERS": "10",
        **{f"CRM_DEV_{k}_PORT": str(v) for k, v in ports.items()},
    }
    service_port = {s: ports[s.upper().replace("-", "_")] for s in SERVICES}
    out = tmp_path / "stack.out"
    with out.open("wb") as log:
        crm = subprocess.Popen(
            [sys.executable, "-m", "crm_kit.devstack", "run"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    prometheus = None
    try:
        deadline = time.monotonic() + 180
        while b"Telecom CRM is up" not in out.read_bytes():
            assert crm.poll() is None, out.read_text()
            assert time.monotonic() < deadline, out.read_text()
            time.sleep(0.3)
        prometheus_port = free_port()
        config = _scrape_config(tmp_path, service_port)
        with (tmp_path / "prometheus.out").open("wb") as log:
            prometheus = subprocess.Popen(
                [
                    "prometheus",
                    f"--config.file={config}",
                    f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{prometheus_port}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        api = httpx.Client(base_url=f"http://127.0.0.1:{prometheus_port}", timeout=10)
        _wait(lambda: _ready(api, prometheus), 60, "Prometheus did not become ready", tmp_path / "prometheus.out")

        def targets() -> list[dict[str, Any]]:
            return api.get("/api/v1/targets").json()["data"]["activeTargets"]

        def all_up() -> bool:
            found = targets()
            return len(found) == len(SERVICES) and all(t["health"] == "up" for t in found)

        _wait(all_up, 60, "a target is not up", targets)
        assert sorted(t["labels"]["service"] for t in targets()) == sorted(SERVICES)

        def groups() -> list[dict[str, Any]]:
            return api.get("/api/v1/rules").json()["data"]["groups"]

        def evaluated() -> bool:
            found = groups()
            return len(found) == len(rule_groups()) and all(r["health"] != "unknown" for g in found for r in g["rules"])

        _wait(evaluated, 60, "a rule group was never evaluated", groups)
        assert sorted(g["name"] for g in groups()) == sorted(g["name"] for g in rule_groups())
        failing = [
            (r["name"], r.get("lastError"))
            for g in groups()
            for r in g["rules"]
            if r["health"] != "ok" or r.get("lastError")
        ]
        assert not failing, failing

        def availability_alerts() -> set[str]:
            active = {a["labels"]["alertname"] for a in api.get("/api/v1/alerts").json()["data"]["alerts"]}
            return active & {"CrmServiceDown", "CrmServiceTargetMissing"}

        # every target is labelled as the alerts expect: once an evaluation has seen the scrapes, none is pending
        _wait(lambda: not availability_alerts(), 20, "a running service is alerted as down", availability_alerts)

        for file, dashboard in dashboards().items():
            for expr in dashboard_expressions(dashboard):
                answer = api.get("/api/v1/query", params={"query": expr.replace("$service", ".+")}).json()
                assert answer["status"] == "success", (file, expr, answer)

        defined = code_metrics()
        wanted = {name for name in referenced() if name in defined or name in PROMETHEUS_SERIES}

        def missing() -> set[str]:
            return wanted - set(api.get("/api/v1/label/__name__/values").json()["data"])

        # the demo's events still arrive for a while: what is missing once the list has settled must be an event's
        absent_metrics = _settled(missing, 5, 90)
        exported = {
            service: {f.name: f for f in text_string_to_metric_families(httpx.get(f"{url}/metrics", timeout=10).text)}
            for service, url in ((s, f"http://127.0.0.1:{p}") for s, p in service_port.items())
        }
        for name in sorted(absent_metrics):
            family, kind = defined[name]
            owner = _owner(family)
            declared = exported[owner].get(family)
            assert declared is not None and declared.type == kind and declared.documentation, (
                f"{name}: no HELP and TYPE of {family} in {owner}'s scrape"
            )
            assert not declared.samples, f"{name} has samples in {owner}'s scrape but none reached Prometheus"

        records = recorded()
        absent = set(records) - set(api.get("/api/v1/label/__name__/values").json()["data"])
        for name in sorted(absent):
            # a recording made only of event-only metrics has nothing to record yet; the AUC filters out NaN,
            # which a demo without a trained model has
            sources = {n for n in records[name] if n not in records}
            assert sources <= absent_metrics or name == "kind:crm_churn_model_roc_auc:max", f"{name} was never recorded"
    finally:
        if prometheus is not None:
            prometheus.terminate()
            prometheus.wait(30)
        crm.send_signal(signal.SIGINT)
        crm.wait(60)


def _scrape_config(tmp_path: Path, service_port: dict[str, int]) -> Path:
    """prometheus.yml with the test's ports, scraping and evaluating every second, and the rule file with each
    group's interval shortened to match (the rules themselves unchanged)."""
    config = yaml.safe_load(CONFIG.read_text())
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    for job in config["scrape_configs"]:
        for target in job["static_configs"]:
            target["targets"] = [f"127.0.0.1:{service_port[target['labels']['service']]}"]
    rules_file = yaml.safe_load(ALERTS.read_text())
    for group in rules_file["groups"]:
        group["interval"] = "1s"
    (tmp_path / ALERTS.name).write_text(yaml.safe_dump(rules_file, sort_keys=False, allow_unicode=True))
    config["rule_files"] = [str(tmp_path / ALERTS.name)]
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def _owner(family: str) -> str:
    """The service whose process exports a metric family: its name carries it."""
    return max((s for s in SERVICES if family.startswith(f"crm_{s.replace('-', '_')}_")), key=len)


def _ready(api: httpx.Client, process: subprocess.Popen[bytes]) -> bool:
    assert process.poll() is None, "prometheus exited"
    try:
        return api.get("/-/ready").status_code == 200
    except httpx.HTTPError:
        return False


def _settled(read: Any, quiet: float, seconds: float) -> set[str]:
    """`read()` once it has not changed for `quiet` seconds."""
    deadline = time.monotonic() + seconds
    value, since = read(), time.monotonic()
    while time.monotonic() - since < quiet:
        assert time.monotonic() < deadline, f"still changing after {seconds:.0f}s: {value}"
        time.sleep(1)
        if (now := read()) != value:
            value, since = now, time.monotonic()
    return value


def _wait(condition: Any, seconds: float, message: str, detail: Any) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            shown = detail.read_text() if isinstance(detail, Path) else detail()
            pytest.fail(f"{message}: {shown}")
        time.sleep(0.5)
