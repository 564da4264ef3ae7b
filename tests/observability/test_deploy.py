"""deploy/: the dashboard and alert rules ask only for metrics magflow exports; the files fit together."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
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
METRICS_TOKEN = "prometheus-scrape-token-0123456789abcdef"
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
    app = serve(settings_for(tmp_path, magflow_metrics_token=METRICS_TOKEN))
    async with httpx.AsyncClient(base_url=app.url, timeout=20) as client:
        response = await client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert response.status_code == 200, response.text
    text = response.text
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
def test_promtool_accepts_the_rules_config_and_rule_tests(args: list[str], tmp_path: Path) -> None:
    # promtool wants the scrape token's file to exist: check a copy that points at one made here.
    token = tmp_path / "metrics_token"
    token.write_text(METRICS_TOKEN)
    for name in ("alerts.yml", "alerts_test.yml"):
        shutil.copy(DEPLOY / name, tmp_path / name)
    config = (DEPLOY / "prometheus.yml").read_text()
    assert "/run/secrets/metrics_token" in config
    (tmp_path / "prometheus.yml").write_text(config.replace("/run/secrets/metrics_token", str(token)))
    result = subprocess.run([_promtool(), *args], cwd=tmp_path, capture_output=True, text=True, timeout=60)
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


REQUIRED = re.compile(r"^\$\{([A-Z_]+):\?[^}]+\}$")  # ${NAME:?message}: compose stops unless NAME is set
SECRET_KEY = re.compile(r"PASSWORD|SECRET|TOKEN", re.IGNORECASE)
URL_PASSWORD = re.compile(r"://[^:/@\s]*:([^@\s]+)@")


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    return data


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    return dict(env) if isinstance(env, dict) else dict(item.split("=", 1) for item in env)


def test_only_the_tls_proxy_publishes_a_port_and_by_default_on_loopback() -> None:
    services = compose()["services"]
    published = {name: s["ports"] for name, s in services.items() if s.get("ports")}
    assert set(published) == {"proxy"}
    for port in published["proxy"]:
        address = port.rsplit(":", 2)[0]
        assert address in ("127.0.0.1", "${MAGFLOW_BIND_ADDRESS:-127.0.0.1}"), port
    assert {p.rsplit(":", 1)[1] for p in published["proxy"]} == {"443", "80"}
    assert "./Caddyfile:/etc/caddy/Caddyfile:ro" in services["proxy"]["volumes"]


def test_databases_and_monitoring_sit_on_internal_networks_only() -> None:
    data = compose()
    networks, services = data["networks"], data["services"]
    internal = {name for name, net in networks.items() if (net or {}).get("internal")}
    for name in ("postgres", "redis", "prometheus", "grafana"):
        attached = set(services[name]["networks"])
        assert attached and attached <= internal, (name, attached - internal)
    for name in ("magflow-api", "magflow-worker", "magflow-beat"):  # they call eMAG, and are reached by no one
        assert "egress" in services[name]["networks"] and "edge" not in services[name]["networks"]
    reachable = set(services["proxy"]["networks"])
    assert reachable - internal == {"edge"}  # the proxy's only outside network is the published one


def test_no_password_is_written_in_the_compose_file() -> None:
    services = compose()["services"]
    for name, service in services.items():
        for key, value in environment(service).items():
            if SECRET_KEY.search(key):
                assert REQUIRED.match(str(value)), f"{name}: {key} must be ${{VARIABLE:?...}}, not {value!r}"
            for password in URL_PASSWORD.findall(str(value)):
                assert REQUIRED.match(password), f"{name}: {key} holds a password in its URL"
    grafana = environment(services["grafana"])
    assert REQUIRED.match(grafana["GF_SECURITY_ADMIN_PASSWORD"])  # no admin/admin
    assert grafana["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    text = (DEPLOY / "docker-compose.yml").read_text()
    assert ":-admin}" not in text and "magflow:magflow@" not in text


def test_redis_wants_a_password_that_never_reaches_a_command_line() -> None:
    services = compose()["services"]
    redis = services["redis"]
    command = " ".join(redis["command"])
    assert "requirepass" in command and "$$REDIS_PASSWORD" in command  # read from its environment by the shell
    assert REQUIRED.match(environment(redis)["REDIS_PASSWORD"])
    assert "--requirepass" not in command  # that would show the password to `ps` on the host
    assert "REDISCLI_AUTH" in " ".join(redis["healthcheck"]["test"])
    url = environment(services["magflow-api"])["REDIS_URL"]
    assert url.startswith("redis://:${REDIS_PASSWORD:?") and url.endswith("@redis:6379/0")


def test_prometheus_scrapes_with_the_metrics_token_from_a_secret_file() -> None:
    data = compose()
    scrape = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())["scrape_configs"][0]
    assert scrape["authorization"] == {"type": "Bearer", "credentials_file": "/run/secrets/metrics_token"}
    assert "metrics_token" in data["services"]["prometheus"]["secrets"]
    assert data["secrets"]["metrics_token"] == {"environment": "MAGFLOW_METRICS_TOKEN"}
    assert REQUIRED.match(environment(data["services"]["magflow-api"])["MAGFLOW_METRICS_TOKEN"])


def test_the_api_trusts_forwarded_headers_from_the_proxy_alone() -> None:
    services = compose()["services"]
    command = services["magflow-api"]["command"]
    trusted = command[command.index("--forwarded-allow-ips") + 1]
    assert trusted == services["proxy"]["networks"]["frontend"]["ipv4_address"]


def test_env_example_names_every_variable_the_compose_file_requires() -> None:
    text = (DEPLOY / "docker-compose.yml").read_text()
    required = set(re.findall(r"\$\{([A-Z_]+):\?", text)) | set(re.findall(r"\$\{([A-Z_]+):-", text))
    example = (DEPLOY / "env.example").read_text()
    named = set(re.findall(r"^([A-Z_]+)=", example, re.MULTILINE))
    assert required == named
    assert all(re.search(rf"^{name}=$", example, re.MULTILINE) for name in required if SECRET_KEY.search(name))


def _caddy() -> str:
    found = shutil.which("caddy")
    if found is None:
        pytest.skip("caddy is not installed (apt-get install -y caddy)")
    return found


def test_caddy_accepts_the_config_and_keeps_metrics_and_big_bodies_out(tmp_path: Path) -> None:
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "MAGFLOW_DOMAIN": "magflow.example.ro"}
    run = [_caddy(), "adapt", "--adapter", "caddyfile", "--config", str(DEPLOY / "Caddyfile")]
    result = subprocess.run(run, capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 0, result.stderr
    server = json.loads(result.stdout)["apps"]["http"]["servers"]["srv0"]
    assert server["listen"] == [":443"] and server["read_header_timeout"] > 0
    site = server["routes"][0]
    assert site["match"] == [{"host": ["magflow.example.ro"]}]
    routes = site["handle"][0]["routes"]
    body_limit = next(h for r in routes for h in r["handle"] if h["handler"] == "request_body")
    assert body_limit["max_size"] == 1024 * 1024
    by_path = {tuple(r.get("match", [{}])[0].get("path", [])): json.dumps(r["handle"]) for r in routes[1:]}
    assert '"status_code": 404' in by_path[("/metrics*",)]
    assert "grafana:3000" in by_path[("/grafana*",)] and "magflow-api:8000" in by_path[()]
