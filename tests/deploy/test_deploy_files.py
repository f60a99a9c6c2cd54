"""deploy/ checked without Docker or Kubernetes: the compose file, the Dockerfile and the Helm
chart are parsed (the chart rendered by tests.deploy.helmlite) and checked against the hub
itself: every TAHUB_* name is a real setting, the settings production needs are set, images
are pinned, ports, probes and start order agree. test_compose_runs_in_process and
test_chart_runs_in_process then run the very same configurations in this process, with only
hosts, ports and file paths moved to a local PostgreSQL and a local S3 server.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import sqlalchemy as sa
import uvicorn
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)
from starlette.routing import Route

from hub.api.app import app_from_env, create_app
from hub.settings import Settings, load_settings
from tests.deploy.deployfiles import (
    DEPLOY,
    ROOT,
    Dockerfile,
    chart_objects,
    chart_settings_toml,
    chart_values,
    compose,
    compose_environment,
    container_env,
    env_file,
    toml_text,
)
from tests.deploy.helmlite import TemplateError, render
from tests.hub.postgres import postgres_database
from tests.s3server import S3Server

FIELDS = set(Settings.model_fields)
HUBS = ("hub-1", "hub-2")
ALL_INTERFACES = "0.0.0.0"  # noqa: S104 (what a container listens on; compared, never bound)
TMP = "/tmp"  # noqa: S108 (a mount path in the chart)
# Settings whose default serves the embedded pilot only: production must set each of them.
PRODUCTION = {
    "host",  # 127.0.0.1 is unreachable from the proxy / the kubelet
    "port",
    "public_url",
    "database_url",  # SQLite file
    "storage",  # local folder
    "s3_endpoint",  # AWS
    "s3_public_endpoint",
    "s3_access_key",
    "s3_secret_key",
    "signing_key_file",  # a key per process: tokens of one replica refused by the others
}
TAHUB_NAME = re.compile(r"\bTAHUB_[A-Z0-9_]+\b")
# The connector's own variables (partner side), which docs may mention next to the hub's.
CONNECTOR_VARS = {
    name
    for path in (ROOT / "connectors").rglob("*.py")
    for name in TAHUB_NAME.findall(path.read_text())
}


def setting(variable: str) -> str:
    assert variable.startswith("TAHUB_"), variable
    return variable.removeprefix("TAHUB_").lower()


def hub_container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (deployment,) = [o for o in objects if o["kind"] == "Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


def chart_settings(objects: list[dict[str, Any]]) -> dict[str, Any]:
    """Every setting the chart gives the hub: the settings file, then env (which wins)."""
    values = dict(chart_settings_toml(objects))
    values.update({setting(k): v for k, v in container_env(hub_container(objects)).items()
                   if k.startswith("TAHUB_")})
    return values


# -- names -----------------------------------------------------------------------------------
def test_every_tahub_variable_in_deploy_is_a_setting() -> None:
    files = [p for p in DEPLOY.rglob("*") if p.is_file() and p.suffix != ".pem"]
    used = {(p.relative_to(ROOT).as_posix(), name)
            for p in files for name in TAHUB_NAME.findall(p.read_text())}
    assert {f for f, _ in used} >= {
        "deploy/.env.example", "deploy/docker-compose.yml", "deploy/Dockerfile",
        "deploy/caddy/Caddyfile", "deploy/minio/init.sh",
        "deploy/helm/tahub/templates/deployment.yaml",
    }
    unknown = sorted((f, n) for f, n in used if setting(n) not in FIELDS)
    assert unknown == []


def test_every_tahub_variable_in_the_production_docs_is_a_setting() -> None:
    for doc in (ROOT / "docs" / "production.md", ROOT / "README.md"):
        names = set(TAHUB_NAME.findall(doc.read_text())) - CONNECTOR_VARS
        assert sorted(n for n in names if setting(n) not in FIELDS) == [], doc.name


def test_the_chart_settings_file_has_only_settings() -> None:
    """The chart's settings file uses the names of compose, lower-case without TAHUB_."""
    objects = chart_objects()
    assert set(chart_settings_toml(objects)) <= FIELDS
    assert chart_settings_toml(objects) == tomllib.loads(chart_values()["settings"])
    assert "TAHUB_" not in chart_values()["settings"]


def test_env_example_lists_every_setting() -> None:
    text = (DEPLOY / ".env.example").read_text()
    listed = {setting(n) for n in TAHUB_NAME.findall(text)}
    assert sorted(FIELDS - listed) == []


# -- production settings are set -------------------------------------------------------------
@pytest.mark.parametrize("service", [*HUBS, "migrate"])
def test_compose_sets_every_production_setting(service: str) -> None:
    env = compose_environment(service)
    values = {setting(k): v for k, v in env.items() if k.startswith("TAHUB_")}
    assert sorted(PRODUCTION - {k for k, v in values.items() if v}) == []
    assert values["host"] == ALL_INTERFACES
    assert values["database_url"].startswith("postgresql+psycopg://")
    assert values["storage"].startswith("s3://")
    assert values["public_url"].startswith("https://")
    assert values["s3_public_endpoint"].startswith("https://")
    assert values["signing_key_file"].startswith("/run/secrets/")
    assert values["s3_sse"] != "none"


def test_chart_sets_every_production_setting() -> None:
    values = chart_settings(chart_objects())
    assert sorted(PRODUCTION - set(values)) == []
    assert values["host"] == ALL_INTERFACES
    assert values["storage"].startswith("s3://")
    assert values["public_url"].startswith("https://")
    assert values["s3_endpoint"].startswith("https://")  # hub -> object store over TLS
    assert values["s3_public_endpoint"].startswith("https://")
    for secret in ("database_url", "s3_access_key", "s3_secret_key"):
        assert values[secret][0] == "secret", secret  # from the Secret, never a value
    assert values["workers"] >= 1


def test_no_real_secret_is_committed() -> None:
    env = env_file(DEPLOY / ".env.example")
    assert env["TAHUB_S3_SECRET_KEY"].startswith("change-me")
    assert urlsplit(env["TAHUB_DATABASE_URL"]).password.startswith("change-me")  # type: ignore[union-attr]
    ignored = (DEPLOY / ".gitignore").read_text().split()
    assert {"/.env", "/secrets/"} <= set(ignored)
    for name, secret in compose()["secrets"].items():
        assert secret["file"].startswith("./secrets/"), name
    assert "password" not in yaml.safe_dump(chart_values()).lower()
    assert set(chart_values()["secret"]) == {
        "name", "databaseUrlKey", "s3AccessKeyKey", "s3SecretKeyKey", "signingKeyKey"}


# -- images ----------------------------------------------------------------------------------
PINNED = re.compile(r"^[^:@\s]+(:(?P<tag>[^@\s]+))?(@sha256:[0-9a-f]{64})?$")
EXACT = re.compile(r"^(\d+\.\d+\.\d+([-.].*)?|RELEASE\.\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ)$")
# PostgreSQL's releases have two numbers (16.8): major.minor is the exact release.
EXACT_POSTGRES = re.compile(r"^\d+\.\d+([-.].*)?$")


def pinned(image: str) -> bool:
    match = PINNED.match(image)
    if match is None:
        return False
    tag = match["tag"] or ""
    exact = EXACT_POSTGRES if image.startswith("postgres:") else EXACT
    return "@sha256:" in image or (tag != "latest" and exact.match(tag) is not None)


def test_every_image_is_pinned() -> None:
    images = [spec["image"] for spec in compose()["services"].values()]
    images += [args.split()[0] for args in Dockerfile.read().all("FROM")]
    values = chart_values()
    images.append(f"{values['image']['repository']}:{values['image']['tag']}")
    assert len(images) >= 9
    assert [i for i in images if not pinned(i)] == []
    assert not pinned("postgres:16") and not pinned("minio/minio:latest")
    assert not pinned("caddy") and pinned("caddy:2.9.1-alpine")
    assert not pinned("caddy:2.9-alpine") and pinned("postgres:16.8")


def test_postgresql_is_16() -> None:
    assert compose()["services"]["postgres"]["image"].startswith("postgres:16.")


# -- the Dockerfile --------------------------------------------------------------------------
def test_dockerfile() -> None:
    docker = Dockerfile.read()
    stages = {args.split()[-1]: args.split()[0] for args in docker.all("FROM") if " AS " in args}
    final = docker.all("FROM")[-1]
    assert final.startswith("python:3.11.") and "slim" in final
    assert stages["build"].startswith("python:3.11.") and "slim" in stages["build"]
    # the web assets: built in their own stage from the lock file, copied into the wheel's
    assert stages["web"].startswith("node:") and "python3 hub/web/assets.py" in docker.all("RUN")
    assert "--from=web /src/hub/web/vendor ./hub/web/vendor" in docker.all("COPY")
    ignored = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    assert {"hub/web/node_modules", "hub/web/vendor"} <= set(ignored)
    user = [args for w, args in docker.final_stage if w == "USER"][-1]
    assert user.split(":")[0] not in ("0", "root")
    assert docker.exec_form("ENTRYPOINT") == ["tahub"]
    assert docker.exec_form("CMD") == ["serve"]
    assert "-c requirements.lock" in " ".join(docker.all("RUN"))
    health = " ".join(docker.exec_form("HEALTHCHECK"))
    assert "/livez" in health
    port = docker.env()["TAHUB_PORT"]
    assert docker.all("EXPOSE") == [port]
    assert f"'{port}'" in health  # the default the health check falls back to
    # Every file the build copies exists, and the build context's ignore file lets it in.
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    for args in docker.all("COPY"):
        if "--from" in args:
            continue
        for source in args.split()[:-1]:
            assert (ROOT / source).exists(), source
            within = [source, *(f"{'/'.join(source.split('/')[:n])}/**"
                                for n in range(1, source.count("/") + 2))]
            assert any(f"!{pattern}" in ignore for pattern in within), source
    env = docker.env()
    assert {setting(k) for k in env if k.startswith("TAHUB_")} <= FIELDS


# -- ports -----------------------------------------------------------------------------------
def test_compose_ports_agree() -> None:
    services = compose()["services"]
    docker = Dockerfile.read()
    caddyfile = (DEPLOY / "caddy" / "Caddyfile").read_text()
    for hub in HUBS:
        port = compose_environment(hub)["TAHUB_PORT"]
        assert services[hub]["expose"] == [port] == docker.all("EXPOSE")
        assert f"{hub}:{port}" in caddyfile

    env = compose_environment("hub-1")
    s3 = urlsplit(env["TAHUB_S3_ENDPOINT"])
    minio = services["minio"]
    address = minio["command"][minio["command"].index("--address") + 1]
    assert s3.hostname == "minio" and s3.scheme == "http"
    assert f":{s3.port}" == address and minio["expose"] == [str(s3.port)]
    assert f"reverse_proxy minio:{s3.port}" in caddyfile
    assert compose_environment("minio-init")["MINIO_URL"] == env["TAHUB_S3_ENDPOINT"]

    db = sa.make_url(env["TAHUB_DATABASE_URL"])
    postgres = services["postgres"]
    assert db.host == "postgres" and postgres["expose"] == [str(db.port)]
    test = postgres["healthcheck"]["test"]
    assert test[test.index("-p") + 1] == str(db.port)
    assert db.username == postgres["environment"]["POSTGRES_USER"]
    assert db.database == postgres["environment"]["POSTGRES_DB"]

    # The proxy serves the two public names of the settings, on the published https port.
    proxy = services["proxy"]
    assert "{$TAHUB_PUBLIC_URL}" in caddyfile and "{$TAHUB_S3_PUBLIC_ENDPOINT}" in caddyfile
    assert proxy["environment"]["TAHUB_PUBLIC_URL"] == env["TAHUB_PUBLIC_URL"]
    assert proxy["environment"]["TAHUB_S3_PUBLIC_ENDPOINT"] == env["TAHUB_S3_PUBLIC_ENDPOINT"]
    assert "443:443" in proxy["ports"]
    assert all(urlsplit(env[k]).port in (None, 443)
               for k in ("TAHUB_PUBLIC_URL", "TAHUB_S3_PUBLIC_ENDPOINT"))


def resolve_port(port: int | str, container: dict[str, Any]) -> int:
    if isinstance(port, int):
        return port
    (number,) = [p["containerPort"] for p in container["ports"] if p["name"] == port]
    return int(number)


def test_chart_ports_and_probes_agree() -> None:
    objects = chart_objects()
    container = hub_container(objects)
    port = int(container_env(container)["TAHUB_PORT"])
    assert [p["containerPort"] for p in container["ports"]] == [port]
    assert resolve_port(container["livenessProbe"]["httpGet"]["port"], container) == port
    assert resolve_port(container["readinessProbe"]["httpGet"]["port"], container) == port
    assert resolve_port(container["startupProbe"]["httpGet"]["port"], container) == port
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert container["startupProbe"]["httpGet"]["path"] == "/livez"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    (service,) = [o for o in objects if o["kind"] == "Service"]
    (service_port,) = service["spec"]["ports"]
    assert resolve_port(service_port["targetPort"], container) == port
    (ingress,) = [o for o in objects if o["kind"] == "Ingress"]
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend["port"]["name"] == service_port["name"]
    assert backend["name"] == service["metadata"]["name"]
    pod = next(o for o in objects if o["kind"] == "Deployment")["spec"]["template"]
    annotations = pod["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == "/metrics"
    assert int(annotations["prometheus.io/port"]) == port
    # The image's own defaults agree with the chart.
    assert Dockerfile.read().env()["TAHUB_PORT"] == str(port)


def test_probes_use_livez_and_readyz() -> None:
    assert "/livez" in " ".join(Dockerfile.read().exec_form("HEALTHCHECK"))
    assert "health_uri /readyz" in (DEPLOY / "caddy" / "Caddyfile").read_text()


INTERNAL = {"/livez", "/readyz", "/metrics"}  # operations: never routed from outside


def test_public_routes_only_reach_the_outside(tmp_path: Path) -> None:
    """The ingress routes every route of the hub but the operations endpoints, and the
    compose proxy refuses exactly those."""
    app = create_app(Settings(data_dir=tmp_path))
    paths = set(app.openapi()["paths"]) | {
        r.path for r in app.routes if isinstance(r, Route)}  # /docs, /openapi.json
    assert paths >= INTERNAL
    (ingress,) = [o for o in chart_objects() if o["kind"] == "Ingress"]
    rules = ingress["spec"]["rules"][0]["http"]["paths"]

    def routed(path: str) -> bool:
        return any(path == r["path"] if r["pathType"] == "Exact"
                   else path == r["path"] or path.startswith(r["path"].rstrip("/") + "/")
                   for r in rules)

    assert sorted(p for p in paths - INTERNAL if not routed(p)) == []
    assert sorted(p for p in INTERNAL if routed(p)) == []
    caddyfile = (DEPLOY / "caddy" / "Caddyfile").read_text()
    (matcher,) = re.findall(r"@internal path (.+)", caddyfile)
    assert set(matcher.split()) == INTERNAL
    assert "respond @internal 404" in caddyfile


# -- the chart -------------------------------------------------------------------------------
def test_chart_objects() -> None:
    objects = chart_objects()
    kinds = sorted(o["kind"] for o in objects)
    assert kinds == ["ConfigMap", "Deployment", "Ingress", "Job",
                     "PodDisruptionBudget", "Service"]
    (deployment,) = [o for o in objects if o["kind"] == "Deployment"]
    assert deployment["spec"]["replicas"] == 2
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True

    # Graceful shutdown fits in Kubernetes' grace period.
    container = hub_container(objects)
    pause = int(container["lifecycle"]["preStop"]["exec"]["command"][1])
    grace = chart_settings_toml(objects).get(
        "shutdown_grace_seconds", Settings.model_fields["shutdown_grace_seconds"].default)
    assert pod["terminationGracePeriodSeconds"] > pause + grace

    # The signing key: a file of the Secret, where TAHUB_SIGNING_KEY_FILE says.
    key_file = Path(container_env(container)["TAHUB_SIGNING_KEY_FILE"])
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == str(key_file.parent)]
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    assert volume["secret"]["secretName"] == chart_values()["secret"]["name"]
    assert [i["path"] for i in volume["secret"]["items"]] == [key_file.name]
    assert volume["secret"]["defaultMode"] & 0o007 == 0  # not world-readable

    # The settings file: the ConfigMap, where TAHUB_SETTINGS_FILE says.
    settings_file = Path(container_env(container)["TAHUB_SETTINGS_FILE"])
    (mount,) = [m for m in container["volumeMounts"]
                if m["mountPath"] == str(settings_file.parent)]
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    (configmap,) = [o for o in objects if o["kind"] == "ConfigMap"]
    assert volume["configMap"]["name"] == configmap["metadata"]["name"]
    assert settings_file.name in configmap["data"]

    # The writable folders of a read-only root filesystem.
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    data_dir = container_env(container)["TAHUB_DATA_DIR"]
    assert {data_dir, TMP} <= {m["mountPath"] for m in container["volumeMounts"]}

    (job,) = [o for o in objects if o["kind"] == "Job"]
    assert set(job["metadata"]["annotations"]["helm.sh/hook"].split(",")) == {
        "pre-install", "pre-upgrade"}
    (migrate,) = job["spec"]["template"]["spec"]["containers"]
    assert migrate["args"] == ["admin", "migrate"] and migrate["image"] == container["image"]
    assert container_env(migrate)["TAHUB_DATABASE_URL"] == container_env(
        container)["TAHUB_DATABASE_URL"]

    (pdb,) = [o for o in objects if o["kind"] == "PodDisruptionBudget"]
    assert pdb["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"][
        "matchLabels"]
    assert 0 < pdb["spec"]["minAvailable"] < deployment["spec"]["replicas"]

    (ingress,) = [o for o in objects if o["kind"] == "Ingress"]
    (tls,) = ingress["spec"]["tls"]
    assert tls["secretName"] and tls["hosts"] == [ingress["spec"]["rules"][0]["host"]]
    assert chart_settings_toml(objects)["public_url"] == f"https://{tls['hosts'][0]}"


def test_chart_ingress_takes_a_whole_upload_chunk() -> None:
    (ingress,) = [o for o in chart_objects() if o["kind"] == "Ingress"]
    size = ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"]
    number, unit = re.fullmatch(r"(\d+)([kmg]?)", size.lower()).groups()  # type: ignore[union-attr]
    limit = int(number) * {"": 1, "k": 2**10, "m": 2**20, "g": 2**30}[unit]
    chunk = chart_settings_toml(chart_objects()).get(
        "chunk_bytes", Settings.model_fields["chunk_bytes"].default)
    assert limit >= chunk


def test_chart_options_render() -> None:
    values = chart_values()
    values["ingress"]["enabled"] = False
    values["staging"]["existingClaim"] = "tahub-staging"
    values["policies"]["configMap"] = "tahub-policies"
    values["caConfigMap"] = "tahub-ca"
    values["sparkShared"]["existingClaim"] = "tahub-spark-shared"
    objects = chart_objects(values)
    assert "Ingress" not in {o["kind"] for o in objects}
    container = hub_container(objects)
    env = container_env(container)
    assert env["TAHUB_POLICIES_DIR"] == "/etc/tahub/policies"
    assert env["PGSSLROOTCERT"] == env["SSL_CERT_FILE"] == "/etc/tahub/ca/ca.crt"
    pod = next(o for o in objects if o["kind"] == "Deployment")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["staging"] == {"name": "staging",
                                  "persistentVolumeClaim": {"claimName": "tahub-staging"}}
    assert volumes["policies"]["configMap"]["name"] == "tahub-policies"
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["policies"] == env["TAHUB_POLICIES_DIR"]
    assert mounts["staging"] == f"{env['TAHUB_DATA_DIR']}/staging"
    # the folder shared with a Spark cluster, where the commented spark settings put it
    assert volumes["spark-shared"]["persistentVolumeClaim"] == {
        "claimName": "tahub-spark-shared"}
    assert mounts["spark-shared"] == "/var/lib/tahub-shared"
    assert 'spark_shared_dir = "/var/lib/tahub-shared"' in values["settings"]
    assert "spark-shared" not in str(chart_objects())  # not without a claim


def test_helmlite_renders_the_subset_strictly() -> None:
    context = {"Values": {"a": {"b": "x"}, "on": True, "off": "", "m": {"k": 1}}}
    assert render("v: {{ .Values.a.b | quote }}", context) == 'v: "x"'
    assert render("l:\n  {{- if .Values.on }}\n  - 1\n  {{- else }}\n  - 2\n  {{- end }}\n",
                  context) == "l:\n  - 1\n"
    assert render("{{ if .Values.off }}y{{ else }}n{{ end }}", context) == "n"
    assert render("m:\n{{ toYaml .Values.m | indent 2 }}", context) == "m:\n  k: 1"
    for bad in ("{{ .Values.missing }}", "{{ range .Values.m }}{{ end }}", "{{ if .Values.on }}",
                "{{ include \"x\" . }}", "{{ .Values.a.b | upper }}"):
        with pytest.raises(TemplateError):
            render(bad, context)


# -- compose ---------------------------------------------------------------------------------
def test_compose_start_order() -> None:
    services = compose()["services"]
    for name, spec in services.items():
        assert set(spec.get("depends_on", {})) <= set(services), name

    def needs(service: str, other: str, condition: str) -> None:
        assert services[service]["depends_on"][other] == {"condition": condition}

    for hub in HUBS:
        needs(hub, "migrate", "service_completed_successfully")
        needs(hub, "minio-init", "service_completed_successfully")
        needs("proxy", hub, "service_healthy")
    needs("migrate", "postgres", "service_healthy")
    needs("minio-init", "minio", "service_healthy")
    assert services["migrate"]["command"] == ["admin", "migrate"]
    assert services["migrate"]["image"] == services["hub-1"]["image"]
    assert services["migrate"]["restart"] == "no"

    # A start order exists (no cycle), and migrate comes before the hubs.
    order: list[str] = []
    pending = dict(services)
    while pending:
        ready = [n for n, s in pending.items() if set(s.get("depends_on", {})) <= set(order)]
        assert ready, f"a depends_on cycle among {sorted(pending)}"
        order += sorted(ready)
        for name in ready:
            del pending[name]
    assert order.index("migrate") < min(order.index(h) for h in HUBS)


def test_compose_hubs_share_one_signing_key_and_staging() -> None:
    services = compose()["services"]
    key = compose_environment("hub-1")["TAHUB_SIGNING_KEY_FILE"]
    for hub in HUBS:
        assert [f"/run/secrets/{s}" for s in services[hub]["secrets"]] == [key]
        staging = f"{compose_environment(hub)['TAHUB_DATA_DIR']}/staging"
        assert f"tahub-staging:{staging}" in services[hub]["volumes"]
    grace = int(compose_environment("hub-1").get("TAHUB_SHUTDOWN_GRACE_SECONDS", "30"))
    assert int(services["hub-1"]["stop_grace_period"].removesuffix("s")) > grace
    assert services["hub-1"]["environment"] == services["hub-2"]["environment"]


def test_keycloak_realm_is_valid() -> None:
    import json

    realm = json.loads((DEPLOY / "keycloak" / "tahub-realm.json").read_text())
    assert realm["realm"] == "tahub"
    (client,) = realm["clients"]
    assert client["clientId"] == "tahub-hub" and "secret" not in client
    mount = compose()["services"]["keycloak"]["volumes"][0]
    assert mount.startswith("./keycloak/tahub-realm.json:/opt/keycloak/data/import/")


def test_shell_scripts_parse() -> None:
    for script in (DEPLOY / "make-secrets.sh", DEPLOY / "minio" / "init.sh"):
        subprocess.run(["sh", "-n", str(script)], check=True)


def make_secrets(tmp_path: Path) -> Path:
    """deploy/make-secrets.sh run in a copy of deploy/ (as an operator would), its folder."""
    folder = tmp_path / "deploy"
    folder.mkdir()
    for name in ("make-secrets.sh", ".env.example"):
        shutil.copy(DEPLOY / name, folder / name)
    subprocess.run(["sh", str(folder / "make-secrets.sh")], check=True, capture_output=True)
    return folder


@pytest.mark.skipif(shutil.which("openssl") is None, reason="make-secrets.sh needs openssl")
def test_make_secrets(tmp_path: Path) -> None:
    folder = make_secrets(tmp_path)
    env = env_file(folder / ".env")
    assert "change-me" not in (folder / ".env").read_text()
    assert set(env) == set(env_file(DEPLOY / ".env.example"))
    postgres_password = (folder / "secrets" / "postgres_password").read_text().strip()
    assert urlsplit(env["TAHUB_DATABASE_URL"]).password == postgres_password
    key_file = folder / "secrets" / "tahub_signing_key.pem"
    assert isinstance(load_pem_private_key(key_file.read_bytes(), None), Ed25519PrivateKey)
    if os.getuid() == 0:  # the hub's uid alone may read it (compose mounts it as it is)
        assert (key_file.stat().st_uid, key_file.stat().st_mode & 0o777) == (10001, 0o400)
    assert (folder / "secrets").stat().st_mode & 0o077 == 0
    assert (folder / "secrets" / "postgres_password").stat().st_mode & 0o077 == 0
    kms = (folder / "secrets" / "minio_kms_key").read_text().strip()
    assert re.fullmatch(r"tahub-key:[A-Za-z0-9+/]{43}=", kms)
    # Every secret compose mounts is made.
    for secret in compose()["secrets"].values():
        assert (folder / secret["file"]).is_file(), secret["file"]
    assert (folder / compose()["services"]["keycloak"]["env_file"][0]).is_file()
    # Running it again changes nothing.
    before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    subprocess.run(["sh", str(folder / "make-secrets.sh")], check=True, capture_output=True)
    assert {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == before


# -- the same configurations, run in this process --------------------------------------------
COMPOSE_ONLY = re.compile(r"//(postgres|minio)[:/]|^/(run/secrets|etc/tahub|var/lib/tahub)\b")


def signing_key_pem() -> bytes:
    return Ed25519PrivateKey.generate().private_bytes(
        Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())


def free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextmanager
def serving(app: Any, sock: socket.socket) -> Iterator[str]:
    """``app`` served by uvicorn on ``sock`` (loopback) in a thread, until the block ends."""
    server = uvicorn.Server(
        uvicorn.Config(app, log_config=None, access_log=False, lifespan="on", ws="none"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the hub did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=60)
        sock.close()


def moved(value: str, paths: dict[str, Path]) -> str:
    """``value`` with a container path replaced by where this test put that file or folder."""
    for inside, outside in sorted(paths.items(), key=lambda p: -len(p[0])):
        if value == inside or value.startswith(inside.rstrip("/") + "/"):
            return str(outside) + value[len(inside.rstrip("/")):]
    return value


def local_endpoint(value: str, service_host: str, endpoint: str) -> str:
    """An S3 endpoint of the deployment, moved to the local S3 server (host and port)."""
    assert urlsplit(value).hostname == service_host or service_host == "*", value
    return endpoint


def run_hub(env: dict[str, str], migrate_env: dict[str, str],
            monkeypatch: pytest.MonkeyPatch, key_pem: bytes) -> None:
    """Migrate with ``migrate_env`` (a real ``tahub admin migrate`` process, as the one-shot
    service or hook Job does), then start a hub worker from exactly ``env`` (the factory
    ``tahub serve --workers N`` gives each worker) and check that it is ready."""
    for values in (env, migrate_env):
        leftover = {k: v for k, v in values.items() if COMPOSE_ONLY.search(v)}
        assert leftover == {}, "a value still points inside the deployment"
    base = {k: v for k, v in os.environ.items() if not k.startswith("TAHUB_")}
    cli = Path(sys.executable).with_name("tahub")
    done = subprocess.run([str(cli), "admin", "migrate"], env=base | migrate_env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr

    for name in [k for k in os.environ if k.startswith("TAHUB_")]:
        monkeypatch.delenv(name)
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    sock = free_socket()
    monkeypatch.setenv("TAHUB_HOST", "127.0.0.1")
    monkeypatch.setenv("TAHUB_PORT", str(sock.getsockname()[1]))
    settings = load_settings()
    assert settings.storage.startswith("s3://")
    assert settings.database_url.startswith("postgresql+psycopg://")
    assert settings.workers >= 2

    with serving(app_from_env(), sock) as url, httpx.Client(base_url=url, timeout=30) as http:
        ready = http.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json() == {"status": "ready",
                                "checks": {"database": "ok", "storage": "ok"}}
        assert http.get("/livez").status_code == 200
        assert http.get("/.well-known/openid-configuration").json()["issuer"] == (
            settings.public_url)
        # Tokens are signed with the shared key of the deployment's secret.
        public = load_pem_private_key(key_pem, None).public_key().public_bytes(
            Encoding.Raw, PublicFormat.Raw)
        xs = [k["x"] for k in http.get("/.well-known/jwks.json").json()["keys"]]
        assert base64.urlsafe_b64encode(public).rstrip(b"=").decode() in xs


@pytest.fixture
def local_bucket(s3_server: S3Server) -> Iterator[S3Server]:
    """The bucket the deployment names, made on the local S3 server (as minio-init does)."""
    bucket = env_file(DEPLOY / ".env.example")["TAHUB_STORAGE"].removeprefix("s3://")
    s3_server.start()
    s3_server.remove_bucket(bucket)
    s3_server.make_bucket(bucket.split("/")[0])
    yield s3_server
    s3_server.start()
    s3_server.remove_bucket(bucket.split("/")[0])


def test_compose_runs_in_process(tmp_path: Path, local_bucket: S3Server,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """hub-1's environment (image ENV, .env.example, environment:) with only hosts, ports
    and mounted paths moved: the local PostgreSQL and S3 server, files under tmp_path."""
    key_pem = signing_key_pem()
    (tmp_path / "secrets").mkdir()
    services = compose()["services"]
    with postgres_database() as database_url:

        def local(service: str) -> dict[str, str]:
            spec = services[service]
            # A secret the service does not mount stays missing (migrate has no signing
            # key, as in compose: `tahub admin migrate` does not read it).
            paths: dict[str, Path] = {"/run/secrets": tmp_path / "not-mounted"}
            for secret in spec.get("secrets", []):
                path = tmp_path / "secrets" / secret
                path.write_bytes(key_pem)
                path.chmod(0o600)
                paths[f"/run/secrets/{secret}"] = path
            for volume in spec.get("volumes", []):
                source, target = volume.split(":")[:2]
                if source.startswith("."):  # a bind mount of a repository folder
                    paths[target] = (DEPLOY / source).resolve()
            env = {k: v for k, v in compose_environment(service).items()
                   if k.startswith("TAHUB_")}
            paths[env["TAHUB_DATA_DIR"]] = tmp_path / "data"
            env = {k: moved(v, paths) for k, v in env.items()}
            db = sa.make_url(env["TAHUB_DATABASE_URL"])
            assert db.host == "postgres" and db.drivername == sa.make_url(
                database_url).drivername
            env["TAHUB_DATABASE_URL"] = database_url
            env["TAHUB_S3_ENDPOINT"] = local_endpoint(env["TAHUB_S3_ENDPOINT"], "minio",
                                                      local_bucket.endpoint)
            env["TAHUB_S3_PUBLIC_ENDPOINT"] = local_endpoint(
                env["TAHUB_S3_PUBLIC_ENDPOINT"], "*", local_bucket.endpoint)
            return env

        hub_env = local("hub-1")
        assert hub_env["TAHUB_POLICIES_DIR"] == str(ROOT / "policies")
        run_hub(hub_env, local("migrate"), monkeypatch, key_pem)


def test_chart_runs_in_process(tmp_path: Path, local_bucket: S3Server,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The chart's pod: its env, the settings file of its ConfigMap and the signing key of
    its Secret written where the pod mounts them (under tmp_path), hosts and ports moved."""
    key_pem = signing_key_pem()
    objects = chart_objects()
    values = chart_values()["secret"]
    with postgres_database() as database_url:
        secret = {values["databaseUrlKey"]: database_url,
                  values["s3AccessKeyKey"]: "tahub-hub",
                  values["s3SecretKeyKey"]: "a-test-secret-key",
                  values["signingKeyKey"]: key_pem.decode()}

        def local(pod: dict[str, Any], container: dict[str, Any]) -> dict[str, str]:
            volumes = {v["name"]: v for v in pod["volumes"]}
            paths: dict[str, Path] = {}
            for mount in container["volumeMounts"]:
                folder = tmp_path / pod["containers"][0]["name"] / mount["name"]
                folder.mkdir(parents=True, exist_ok=True)
                paths[mount["mountPath"]] = folder
                volume = volumes[mount["name"]]
                if "configMap" in volume:
                    (configmap,) = [o for o in objects if o["kind"] == "ConfigMap"]
                    assert volume["configMap"]["name"] == configmap["metadata"]["name"]
                    settings = tomllib.loads(configmap["data"]["tahub.toml"])
                    for key in ("s3_endpoint", "s3_public_endpoint"):
                        settings[key] = local_endpoint(settings[key], "*",
                                                       local_bucket.endpoint)
                    (folder / "tahub.toml").write_text(toml_text(settings))
                elif "secret" in volume:
                    for item in volume["secret"]["items"]:
                        (folder / item["path"]).write_text(secret[item["key"]])
                        (folder / item["path"]).chmod(0o600)
            env: dict[str, str] = {}
            for name, value in container_env(container).items():
                if isinstance(value, tuple):
                    assert value[1] == values["name"]
                    env[name] = secret[value[2]]
                else:
                    env[name] = moved(value, paths)
            return env

        (deployment,) = [o for o in objects if o["kind"] == "Deployment"]
        (job,) = [o for o in objects if o["kind"] == "Job"]
        hub_pod = deployment["spec"]["template"]["spec"]
        job_pod = job["spec"]["template"]["spec"]
        run_hub(local(hub_pod, hub_pod["containers"][0]),
                local(job_pod, job_pod["containers"][0]), monkeypatch, key_pem)


def test_compose_spark_profile_shares_one_folder_with_the_hubs() -> None:
    """`--profile spark`: a master, workers and a Spark Connect server, only in that profile,
    mounting the hubs' shared folder at the same path; the commented .env lines point the
    hub at that server and folder."""
    services = compose()["services"]
    spark = {n: s for n, s in services.items() if "spark" in s.get("profiles", [])}
    assert sorted(spark) == ["spark-connect", "spark-master", "spark-worker"]
    assert all("profiles" not in s for n, s in services.items() if n not in spark)
    shared = "tahub-shared:/var/lib/tahub-shared"
    for name in [*spark, *HUBS]:
        assert shared in services[name]["volumes"], name
    connect = " ".join(spark["spark-connect"]["command"])
    assert "SparkConnectServer" in connect and "binding.port=15002" in connect
    env = (DEPLOY / ".env.example").read_text()
    assert "# TAHUB_SPARK_REMOTE=sc://spark-connect:15002" in env
    assert "# TAHUB_SPARK_SHARED_DIR=/var/lib/tahub-shared" in env
    assert "# TAHUB_STORAGE=file:///var/lib/tahub-shared/objects" in env
    assert "install -d -o 10001 -g 10001 -m 2770 /var/lib/tahub-shared" in " ".join(
        Dockerfile.read().all("RUN"))
