"""The deployment files say what the gateway accepts (no container engine runs here:
``.ci/lint-deploy`` validates compose.yaml with docker-compose; helm, where installed)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from hybridgate.config import parse_config

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "hybridgate"
ENV = {
    "HYBRIDGATE_ADMIN_KEY": "k",
    "HYBRIDGATE_PG_DSN": "postgresql://h@db/h",
    "HYBRIDGATE_REDIS_URL": "redis://r:6379/0",
}


def test_dockerfile_runs_slim_and_unprivileged() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.\d+-slim", text, re.M)
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users and not users[-1].startswith(("0", "root"))
    assert '"/src[postgres]"' in text  # the image can run the PostgreSQL store


def test_compose_two_replicas_postgres_redis_and_a_valid_config() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    gateways = [n for n, s in services.items() if s.get("command", [""])[0] == "serve"]
    assert len(gateways) == 2
    assert {"postgres", "redis", "migrate"} <= set(services)
    cfg = parse_config(
        yaml.safe_load((ROOT / "deploy/compose/hybridgate.yaml").read_text()), env=ENV
    )
    assert cfg.store.kind == "postgres" and cfg.store.redis_url


def test_helm_chart_has_every_piece_and_its_config_is_valid() -> None:
    kinds = set()
    for t in (CHART / "templates").glob("*.yaml"):
        kinds |= set(re.findall(r"^kind: (\w+)", t.read_text(), re.M))
    assert {
        "Deployment",
        "Service",
        "ConfigMap",
        "Secret",
        "Job",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
    } <= kinds
    deploy = (CHART / "templates" / "deployment.yaml").read_text()
    assert "path: /readyz" in deploy and "path: /healthz" in deploy
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    cfg = parse_config(values["config"], env=ENV)
    assert cfg.store.kind == "postgres"
    assert yaml.safe_load((CHART / "Chart.yaml").read_text())["apiVersion"] == "v2"
