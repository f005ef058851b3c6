"""Static checks of the deployment and monitoring configuration.

Every check runs a real tool; a missing tool FAILS (never skips) and names the
install step: `bash .ci/install-tools.sh`.

- promtool: monitoring/prometheus.yml and monitoring/alerts.yml
- nginx -t: nginx/nginx.conf with the upstreams on loopback and paths in a temp dir
- docker-compose config: docker-compose.yml (with .env.example as .env)
- kubectl kustomize + kubernetes-validate: deploy/k8s/base and every overlay
- metric names/labels used by the dashboards and alerts exist in gateway/observability/metrics.py
"""

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

ROOT = Path(__file__).resolve().parents[2]
INSTALL_HINT = "run `bash .ci/install-tools.sh` (the lead's .ci/run calls it before the tests)"
K8S_VERSION = "1.30.0"
OVERLAYS = ["base", "overlays/dev", "overlays/prod"]


def require_tool(name: str, package: str) -> str:
    path = shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.access(p, os.X_OK)), None
    )
    if path is None:
        pytest.fail(f"`{name}` is not installed ({package}); {INSTALL_HINT}", pytrace=False)
    return path


def run(cmd: list[str], cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc


# --------------------------------------------------------------------------- nginx


def render_nginx_conf(
    dest: Path, *, listen_port: int, upstream_ports: list[int], ignore_upstream_accel_buffering: bool = False
) -> Path:
    """Copy nginx/nginx.conf into ``dest`` with loopback listen/upstreams and paths inside ``dest``.

    The shipped file is rendered (not a second hand-kept copy), so the tests exercise
    the real directives. ``ignore_upstream_accel_buffering`` makes nginx ignore the
    gateway's own ``X-Accel-Buffering: no`` so that a test proves nginx.conf alone streams.
    Returns the path of the rendered nginx.conf.
    """
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "logs").mkdir(exist_ok=True)
    text = (ROOT / "nginx" / "nginx.conf").read_text()
    subs = [
        (r"(?m)^user\s+[^;]+;", "user root;" if os.geteuid() == 0 else ""),
        (r"(?m)^pid\s+[^;]+;", f"pid {dest}/nginx.pid;"),
        (r"(?m)^error_log\s+[^;]+;", f"error_log {dest}/logs/error.log info;"),
        (
            r"(?m)^(\s*)access_log\s+/dev/stdout\s+prism_json;",
            rf"\1access_log {dest}/logs/access.log prism_json;",
        ),
        (r"(?m)^(\s*)listen\s+8080\b[^;]*;", rf"\1listen 127.0.0.1:{listen_port};"),
        (r"(?m)^worker_processes\s+[^;]+;", "worker_processes 1;"),
        (r"(?m)^(\s*)worker_connections\s+\d+;", r"\1worker_connections 1024;"),
        (r"(?m)^worker_rlimit_nofile\s+\d+;", ""),
    ]
    for pattern, repl in subs:
        text, n = re.subn(pattern, repl, text, count=1)
        assert n == 1, f"nginx.conf no longer has a line matching {pattern!r}; update render_nginx_conf"
    temp_paths = "\n".join(
        f"    {d}_temp_path {dest}/{d};" for d in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    if ignore_upstream_accel_buffering:
        temp_paths += "\n    proxy_ignore_headers X-Accel-Buffering;"
    text, n = re.subn(r"(?m)^http\s*\{", "http {\n" + temp_paths, text, count=1)
    assert n == 1
    upstreams = (ROOT / "nginx" / "upstreams.conf").read_text()
    servers = "\n".join(f"    server 127.0.0.1:{p} max_fails=1 fail_timeout=5s;" for p in upstream_ports)
    upstreams, n = re.subn(r"(?m)^\s*server\s+gateway:8080[^;]*;", servers, upstreams, count=1)
    assert n == 1, "nginx/upstreams.conf must contain `server gateway:8080 ...;`"
    (dest / "upstreams.conf").write_text(upstreams)
    conf = dest / "nginx.conf"
    conf.write_text(text)
    return conf


def test_nginx_config_is_valid(tmp_path: Path) -> None:
    nginx = require_tool("nginx", "Debian package nginx")
    conf = render_nginx_conf(tmp_path / "nginx", listen_port=18080, upstream_ports=[18081, 18082])
    proc = run([nginx, "-t", "-p", str(conf.parent), "-c", str(conf)])
    assert "test is successful" in proc.stderr


def test_nginx_config_has_the_required_directives() -> None:
    text = (ROOT / "nginx" / "nginx.conf").read_text()
    for needle in (
        "proxy_buffering off",
        "proxy_cache off",
        "X-Accel-Buffering",
        "proxy_http_version 1.1",
        "proxy_read_timeout",
        "client_max_body_size",
        "limit_conn ",
        "limit_req zone=",
        "burst=",
        "X-Request-ID",
        "$request_id",
        "X-Forwarded-For",
        "X-Real-IP",
        "location = /healthz",
        "proxy_next_upstream error timeout http_502 http_503",
        "proxy_next_upstream_tries",
        "escape=json",
        "include upstreams.conf",
    ):
        assert needle in text, f"nginx/nginx.conf lacks {needle!r}"
    assert "keepalive" in (ROOT / "nginx" / "upstreams.conf").read_text()


# ---------------------------------------------------------------------- prometheus


def test_promtool_check_config() -> None:
    promtool = require_tool("promtool", "Debian package prometheus")
    run([promtool, "check", "config", str(ROOT / "monitoring" / "prometheus.yml")])


def test_promtool_check_rules() -> None:
    promtool = require_tool("promtool", "Debian package prometheus")
    run([promtool, "check", "rules", str(ROOT / "monitoring" / "alerts.yml")])


def test_alerts_cover_the_operational_signals() -> None:
    rules = yaml.safe_load((ROOT / "monitoring" / "alerts.yml").read_text())
    exprs = " ".join(r["expr"] for g in rules["groups"] for r in g["rules"] if "alert" in r)
    for metric in (
        "prism_requests_total",
        "prism_request_duration_seconds_bucket",
        "gen_ai_server_time_to_first_token_seconds_bucket",
        "prism_circuit_state",
        "prism_quota_rejections_total",
        "prism_usage_queue_depth",
        "prism_usage_dropped_total",
        "prism_shadow_dropped_total",
        "prism_cost_usd_total",
    ):
        assert metric in exprs, f"no alert uses {metric}"


# ------------------------------------------------------------------ metric names

PROMQL_KEYWORDS = {
    "and",
    "or",
    "unless",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "offset",
    "bool",
    "inf",
    "nan",
    "le",
}
TARGET_LABELS = {"job", "instance", "le", "__name__"}
PROMQL_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")


def gateway_metrics() -> dict[str, set[str]]:
    """Exposed series name -> label names, read from the metric objects of the module."""
    import prometheus_client

    from gateway.observability import metrics

    exposed: dict[str, set[str]] = {}
    for obj in vars(metrics).values():
        if not isinstance(obj, prometheus_client.metrics.MetricWrapperBase):
            continue
        name, labels = obj._name, set(obj._labelnames)
        if isinstance(obj, prometheus_client.Counter):
            exposed[f"{name}_total"] = labels
        elif isinstance(obj, prometheus_client.Histogram):
            exposed[f"{name}_bucket"] = labels | {"le"}
            exposed[f"{name}_sum"] = labels
            exposed[f"{name}_count"] = labels
        elif isinstance(obj, prometheus_client.Gauge):
            exposed[name] = labels
        else:  # Summary, Info, Enum: not used by the gateway today
            exposed[name] = labels
    assert exposed, "gateway.observability.metrics defines no metrics"
    return exposed


def strip_strings(expr: str) -> str:
    return re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)


def promql_selectors(expr: str) -> list[tuple[str, set[str]]]:
    """(metric name, label names matched on it) for every vector selector in ``expr``."""
    expr = strip_strings(expr)
    expr = re.sub(r"\$\{?\w+\}?", "x", expr)  # Grafana variables ($__rate_interval, ${model})
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # range / subquery durations
    expr = PROMQL_GROUPING.sub(" ", expr)  # grouping label lists
    found: list[tuple[str, set[str]]] = []
    for m in re.finditer(r"(?<![\w:.])([a-zA-Z_:][\w:]*)\s*(\{([^}]*)\})?", expr):
        name, matchers = m.group(1), m.group(3) or ""
        rest = expr[m.end() :].lstrip()
        if rest.startswith("(") and not m.group(2):
            continue  # function call or aggregation
        if name.lower() in PROMQL_KEYWORDS or re.fullmatch(r"\d+\w*", name):
            continue
        labels = {lm.group(1) for lm in re.finditer(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)", matchers)}
        found.append((name, labels))
    return found


def grouping_labels(expr: str) -> set[str]:
    labels: set[str] = set()
    for m in PROMQL_GROUPING.finditer(strip_strings(expr)):
        labels |= {x.strip() for x in m.group(2).split(",") if x.strip()}
    return labels


def dashboard_exprs() -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "expr" and isinstance(value, str):
                    out.append((where, value))
                elif key in ("query", "definition") and isinstance(value, str) and "(" in value:
                    inner = re.fullmatch(r"\s*label_values\(\s*(.+?)\s*(?:,\s*(\w+))?\s*\)\s*", value)
                    if inner:
                        out.append(
                            (where, inner.group(1) + (f" by ({inner.group(2)})" if inner.group(2) else ""))
                        )
                    elif not value.startswith(("label_names", "metrics(")):
                        out.append((where, value))
                else:
                    walk(value, where)
        elif isinstance(node, list):
            for item in node:
                walk(item, where)

    dashboards = sorted((ROOT / "monitoring" / "grafana" / "dashboards").glob("*.json"))
    assert dashboards, "no dashboards in monitoring/grafana/dashboards"
    for path in dashboards:
        walk(json.loads(path.read_text()), path.name)
    return out


def alert_exprs() -> tuple[list[tuple[str, str]], set[str]]:
    rules = yaml.safe_load((ROOT / "monitoring" / "alerts.yml").read_text())
    exprs, recorded = [], set()
    for group in rules["groups"]:
        for rule in group["rules"]:
            exprs.append((f"alerts.yml:{rule.get('alert') or rule.get('record')}", rule["expr"]))
            if "record" in rule:
                recorded.add(rule["record"])
    return exprs, recorded


def test_promql_parser_finds_names_and_labels() -> None:
    sel = promql_selectors(
        'histogram_quantile(0.95, sum by (le, model) (rate(foo_bucket{route="/v1/x",model=~"$model"}'
        '[$__rate_interval]))) / ignoring(model) group_left sum(up{job="a"}) > scalar(prism:budget) and bar'
    )
    assert sel == [
        ("foo_bucket", {"route", "model"}),
        ("up", {"job"}),
        ("prism:budget", set()),
        ("bar", set()),
    ]


def test_dashboard_and_alert_metrics_exist_in_the_gateway() -> None:
    exposed = gateway_metrics()
    alerts, recorded = alert_exprs()
    problems: list[str] = []
    for where, expr in [*alerts, *dashboard_exprs()]:
        selectors = promql_selectors(expr)
        assert selectors or re.fullmatch(r"\s*vector\([\d.]+\)\s*", expr), f"{where}: no metric in {expr!r}"
        known_labels = set(TARGET_LABELS)
        for name, labels in selectors:
            if name in recorded or name == "up":
                known_labels |= labels
                continue
            if name not in exposed:
                problems.append(f"{where}: unknown metric {name!r}")
                continue
            known_labels |= exposed[name]
            for label in labels - exposed[name] - TARGET_LABELS:
                problems.append(f"{where}: metric {name!r} has no label {label!r}")
        for label in grouping_labels(expr) - known_labels:
            problems.append(f"{where}: grouping by {label!r}, which none of its metrics has")
    assert not problems, "\n".join(problems)


def test_dashboards_are_grafana_dashboards() -> None:
    for path in (ROOT / "monitoring" / "grafana" / "dashboards").glob("*.json"):
        board = json.loads(path.read_text())
        assert board["uid"] and board["title"] and board["panels"], path.name
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids)), f"{path.name}: duplicate panel ids"
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                assert target.get("expr"), f"{path.name}: panel {panel['title']!r} has an empty query"


# ---------------------------------------------------------------------- compose


def test_docker_compose_config(tmp_path: Path) -> None:
    compose = require_tool("docker-compose", "Debian package docker-compose")
    # A copy beside .env.example-as-.env: the real .env is a local secret file.
    shutil.copy(ROOT / "docker-compose.yml", tmp_path / "docker-compose.yml")
    shutil.copy(ROOT / ".env.example", tmp_path / ".env")
    proc = run([compose, "-f", "docker-compose.yml", "config"], cwd=tmp_path)
    config = yaml.safe_load(proc.stdout)
    services = config["services"]
    for name in ("gateway", "nginx", "postgres", "redis", "ollama", "prometheus", "grafana"):
        assert name in services, f"compose lacks service {name}"
    gateway = services["gateway"]
    assert "container_name" not in gateway and "ports" not in gateway, "gateway must stay scalable"
    for name in ("gateway", "nginx", "postgres", "redis", "prometheus", "grafana"):
        assert "healthcheck" in services[name], f"{name} has no healthcheck"
    assert services["postgres"]["image"].startswith("pgvector/pgvector:pg16")  # retrieval needs pgvector
    assert services["redis"]["image"].startswith("redis:7")
    # Bind mounts point at files that exist in the repository.
    raw = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    for svc in raw["services"].values():
        for vol in svc.get("volumes", []):
            src = vol.split(":", 1)[0]
            if src.startswith("./"):
                assert (ROOT / src).exists(), f"compose mounts {src}, which does not exist"


# -------------------------------------------------------------------- kubernetes


def kustomize_build(overlay: str) -> list[dict[str, Any]]:
    kubectl = require_tool("kubectl", "kubectl >= 1.21 with built-in kustomize")
    proc = run([kubectl, "kustomize", str(ROOT / "deploy" / "k8s" / overlay)])
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_kustomize_renders_valid_kubernetes(overlay: str) -> None:
    try:
        import kubernetes_validate
    except ImportError:
        pytest.fail(f"kubernetes-validate is not installed (PyPI); {INSTALL_HINT}", pytrace=False)
    docs = kustomize_build(overlay)
    kinds = {d["kind"] for d in docs}
    for kind in (
        "Deployment",
        "Service",
        "Ingress",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "ConfigMap",
        "Job",
    ):
        assert kind in kinds, f"{overlay}: no {kind}"
    errors = []
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{doc['kind']}/{doc['metadata']['name']}: {exc.message} at {list(exc.path)}")
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_kubernetes_deployment_is_production_shaped(overlay: str) -> None:
    docs = kustomize_build(overlay)
    deploy = next(d for d in docs if d["kind"] == "Deployment")
    pod = deploy["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    drain = float(env["GATEWAY_DRAIN_TIMEOUT_S"]["value"])
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    sleep = float(pre_stop[-1]) if pre_stop[0] == "sleep" else 0.0
    assert pod["terminationGracePeriodSeconds"] > drain + sleep
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["resources"]["requests"]["cpu"]
    for secret_env in ("GATEWAY_DATABASE_URL", "GATEWAY_JWT_SECRET"):
        assert "secretKeyRef" in env[secret_env]["valueFrom"], f"{secret_env} must come from a Secret"
    ingress = next(d for d in docs if d["kind"] == "Ingress")
    assert ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"
    secrets = [d for d in docs if d["kind"] == "Secret"]
    if overlay == "overlays/dev":  # the dev cluster's own Postgres carries pgvector (retrieval)
        postgres = next(d for d in docs if d["kind"] == "StatefulSet" and d["metadata"]["name"] == "postgres")
        assert postgres["spec"]["template"]["spec"]["containers"][0]["image"].startswith("pgvector/pgvector:")
    if overlay != "overlays/dev":
        assert not secrets, f"{overlay} must not commit Secret values"


def test_k8s_routing_config_matches_the_repository_config() -> None:
    source = ROOT / "config" / "prism.yaml"
    copy = ROOT / "deploy" / "k8s" / "base" / "prism.yaml"
    assert source.exists(), "config/prism.yaml is missing"
    assert copy.read_text() == source.read_text(), (
        "deploy/k8s/base/prism.yaml differs from config/prism.yaml: "
        "run `cp config/prism.yaml deploy/k8s/base/prism.yaml`"
    )


# ------------------------------------------------------------------------ docker


def test_dockerfile_shape() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert len(re.findall(r"(?m)^FROM\s", text)) >= 2, "multi-stage build expected"
    assert re.search(r"(?m)^USER\s+(?!root|0\b)", text), "runtime must not run as root"
    assert re.search(r"(?m)^HEALTHCHECK\b.*", text) and "/healthz" in text
    assert re.search(r"(?m)^EXPOSE\s+8080\b", text)
    assert 'CMD ["python", "-m", "gateway"]' in text
    ignored = (ROOT / ".dockerignore").read_text().split()
    for entry in (".git", ".venv", ".env"):
        assert entry in ignored
