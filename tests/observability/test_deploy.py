"""deploy/: the dashboard and alert rules ask only for metrics magflow exports; the files fit together."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from magflow.observability.metrics import (
    configure_metrics,
    record_budget_wait,
    record_emag_request,
    record_rate_limit_hit,
)

from .conftest import AppFactory, settings_for

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
GUIDE_PANELS = ("Sync success rate", "Sync duration trends", "Product count over time", "Error rates",
                "API response times")  # fmt: skip
NAME = re.compile(r"\b(magflow_[a-z0-9_]+)\b")
SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created"), "gauge": ("",)}


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DEPLOY / "grafana" / "dashboards" / "magflow.json").read_text())
    return data


def dashboard_exprs() -> list[str]:
    return [t["expr"] for p in dashboard()["panels"] for t in p.get("targets", [])]


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load((DEPLOY / "alerts.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


async def exported_names(serve: AppFactory, tmp_path: Path) -> set[str]:
    """Every series name /metrics can carry, from its `# TYPE` lines (families are listed even when empty)."""
    configure_metrics(None)
    record_emag_request("main", "product_offer/read", 200, 0.1)
    record_rate_limit_hit("main", "default")
    record_budget_wait("main", "default", 0.1)
    text = (await serve(settings_for(tmp_path)).get("/metrics")).text
    names: set[str] = set()
    for family, kind in re.findall(r"^# TYPE (\S+) (\S+)$", text, re.MULTILINE):
        base = family.removesuffix("_total") if kind == "counter" else family
        names.update(base + suffix for suffix in SUFFIXES.get(kind, ("",)))
    return names


async def test_every_query_names_a_metric_magflow_exports(serve: AppFactory, tmp_path: Path) -> None:
    exported = await exported_names(serve, tmp_path)
    queries = dashboard_exprs() + [rule["expr"] for rule in alert_rules()]
    assert len(queries) > 20
    for query in queries:
        used = set(NAME.findall(query))
        assert used or 'up{job="magflow"}' in query, query
        assert used <= exported, f"{query!r} asks for {used - exported}, which /metrics does not export"


def test_dashboard_has_the_guides_panels_and_the_issues() -> None:
    board = dashboard()
    titles = {p["title"] for p in board["panels"]}
    assert set(GUIDE_PANELS) <= titles
    exprs = " ".join(dashboard_exprs())
    for metric in ("magflow_sync_runs_total", "magflow_sync_duration_seconds_bucket", "magflow_products",
                   "magflow_sync_items_total", "magflow_emag_request_duration_seconds_bucket",
                   "magflow_emag_rate_limited_total", "magflow_emag_rate_budget_wait_seconds_total",
                   "magflow_sync_progress_ratio", "magflow_last_full_sync_age_seconds"):  # fmt: skip
        assert metric in exprs, metric
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    datasource = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text())
    uids = {d["uid"] for d in datasource["datasources"]}
    assert {p["datasource"]["uid"] for p in board["panels"] if "datasource" in p} <= uids


def test_alerts_cover_what_the_guide_says_to_alert_on() -> None:
    exprs = {rule["alert"]: rule["expr"] for rule in alert_rules()}
    assert 'status=~"failed' in exprs["MagflowSyncFailed"]
    assert "magflow_last_successful_sync_age_seconds" in exprs["MagflowNoSuccessfulSync"]
    assert "magflow_sync_heartbeat_age_seconds" in exprs["MagflowSyncStuck"]
    assert "magflow_emag_rate_limited_total" in exprs["MagflowRateLimited"]
    assert 'outcome="failed"' in exprs["MagflowSyncItemErrorsRising"]
    assert "auth_failed" in exprs["MagflowCredentialsRefused"]
    assert all(rule["annotations"]["summary"] and rule["labels"]["severity"] for rule in alert_rules())


def _promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        message = "promtool is not installed (apt-get install -y prometheus)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found


@pytest.mark.parametrize(
    "args",
    [["check", "rules", "alerts.yml"], ["check", "config", "prometheus.yml"], ["test", "rules", "alerts_test.yml"]],
)
def test_promtool_accepts_the_rules_config_and_rule_tests(args: list[str]) -> None:
    result = subprocess.run([_promtool(), *args], cwd=DEPLOY, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_brings_up_every_part_with_files_that_exist() -> None:
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"magflow-api", "magflow-worker", "magflow-beat", "postgres", "redis", "prometheus", "grafana"} <= set(
        services
    )
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), source
    build = services["magflow-api"]["build"]
    assert (DEPLOY / build["context"] / build["dockerfile"]).is_file()
    prometheus = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    targets = prometheus["scrape_configs"][0]["static_configs"][0]["targets"]
    assert targets == ["magflow-api:8000"]
    provider = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/magflow.yml").read_text())
    mounted = {v.split(":")[1] for v in services["grafana"]["volumes"] if v.startswith("./grafana/dashboards")}
    assert provider["providers"][0]["options"]["path"] in mounted
