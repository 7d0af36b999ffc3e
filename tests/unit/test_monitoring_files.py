"""The monitoring files in deploy/monitoring/ against the code: every metric an alert rule or the
dashboard reads is one notify exports, every exported metric is on the dashboard, the rules are
well formed, and compose's monitoring profile scrapes every service that serves metrics."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.metrics import MetricWrapperBase

from notify.config import Settings
from notify.migrate import upgrade
from notify.observability import database_gauges, metrics
from notify.observability.database_gauges import DatabaseGauges
from tests.unit.test_deployment_files import load_compose, worker_queues

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "deploy" / "monitoring"
METRIC = re.compile(r"\bnotify_[a-z_]+\b")
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def families() -> dict[str, str]:
    """Each metric family notify.observability.metrics defines, with its type."""
    found = {}
    for thing in vars(metrics).values():
        if isinstance(thing, MetricWrapperBase):
            family = thing.describe()[0]
            found[family.name] = family.type
    return found


def exported_series() -> set[str]:
    names = {
        f"{family}{suffix}" for family, kind in families().items() for suffix in SUFFIXES[kind]
    }
    return names | set(database_gauges.NAMES)


def rules() -> list[dict[str, Any]]:
    document = yaml.safe_load((MONITORING / "alerts.yml").read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def dashboard_expressions() -> list[str]:
    board = json.loads((MONITORING / "grafana" / "dashboards" / "notify.json").read_text())
    return [target["expr"] for panel in board["panels"] for target in panel.get("targets", [])]


def test_every_metric_the_alert_rules_and_the_dashboard_read_is_exported() -> None:
    exported = exported_series()
    used = {name for rule in rules() for name in METRIC.findall(rule["expr"])}
    used |= {name for expr in dashboard_expressions() for name in METRIC.findall(expr)}
    assert used, "nothing read: the pattern or the files are wrong"
    assert used - exported == set()


def test_every_exported_metric_is_on_the_dashboard() -> None:
    on_board = " ".join(dashboard_expressions())
    missing = [
        name
        for name in [*families(), *database_gauges.NAMES]
        if not re.search(rf"\b{name}(_total|_bucket|_sum|_count)?\b", on_board)
    ]
    assert missing == []


def test_the_database_gauges_are_the_families_a_scrape_gets(tmp_path: Path) -> None:
    from notify.db import make_session_factory, open_database

    url = f"sqlite:///{tmp_path / 'gauges.sqlite'}"
    upgrade(url)
    engine = open_database(Settings(database_url=url))
    try:
        got = [family.name for family in DatabaseGauges(make_session_factory(engine)).collect()]
    finally:
        engine.dispose()
    assert sorted(got) == sorted(database_gauges.NAMES)


def test_the_alert_rules_are_well_formed_and_cover_what_the_issue_names() -> None:
    found = rules()
    for rule in found:
        assert set(rule) >= {"alert", "expr", "labels", "annotations"}, rule
        assert rule["labels"]["severity"] in {"page", "ticket"}
        assert rule["annotations"]["summary"]
        assert rule["expr"].count("(") == rule["expr"].count(")"), rule["alert"]
    names = {rule["alert"] for rule in found}
    assert len(names) == len(found)
    late = next(rule for rule in found if rule["alert"] == "NotifyEssentialMailLate")
    assert 'lane="essential"' in late["expr"] and late["expr"].rstrip().endswith("> 60")
    lanes = {
        m
        for rule in found
        for m in re.findall(r'notify_worker_lanes\{lane="(\w+)"\}', rule["expr"])
    }
    assert lanes == {lane for queues in worker_queues(load_compose()).values() for lane in queues}
    for needed in ("notify_feedback_total", "notify_callback_oldest_due_seconds"):
        assert any(needed in rule["expr"] for rule in found)
    failure = " ".join(rule["expr"] for rule in found)
    assert 'outcome="failed"' in failure and 'kind="complaint"' in failure


def test_compose_monitoring_profile_scrapes_every_service_that_serves_metrics() -> None:
    compose = load_compose()
    services = compose["services"]
    for name in ("prometheus", "grafana", "flower"):
        assert services[name]["profiles"] == ["monitoring"]
    for service in ("prometheus", "grafana"):
        for volume in services[service]["volumes"]:
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), source
    config = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]
    assert any(
        v.endswith(":/etc/prometheus/alerts.yml:ro") for v in services["prometheus"]["volumes"]
    )
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    targets = {
        name: sd["port"]
        for job in jobs.values()
        for sd in job["dns_sd_configs"]
        for name in sd["names"]
    }
    workers = set(worker_queues(compose))
    default_port = Settings().worker_metrics_port
    assert {name: targets.get(name) for name in workers} == dict.fromkeys(workers, default_port)
    for name in workers | {"inbound"}:
        assert services[name]["environment"]["NOTIFY_METRICS_BIND"] == "0.0.0.0"
        assert not services[name].get("ports") or name == "inbound"
    assert f"--metrics-port {targets['inbound']}" in services["inbound"]["command"]
    assert targets["web"] == 8000
    web = jobs["notify-web"]
    assert web["authorization"]["credentials_file"] == "/run/secrets/metrics_token"
    assert compose["secrets"]["metrics_token"]["environment"] == "NOTIFY_METRICS_TOKEN"
