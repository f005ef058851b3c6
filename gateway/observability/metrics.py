"""Prometheus metrics: names, label sets and the /metrics exposition.

Metric objects are module constants (never reassigned). Label values come from
bounded sets only: configured model/target names (anything else becomes
``other``), route templates, status codes, fixed enums. With several worker
processes set ``PROMETHEUS_MULTIPROC_DIR`` before start; ``/metrics`` then sums
every worker's values.

Truthful in multiprocess mode: every gauge is ``livesum``/``livemax``/``livemin``, so a worker's values
leave with it — on a graceful exit (``mark_process_dead`` in the lifespan) and, for a worker that
was killed, at the next scrape (``reap_dead_workers``: its pid no longer runs). Counters of dead
workers stay (they are cumulative). Series of bounded label sets are created at 0 at start-up and
on every config load (``zero_initialise``), so ``rate()`` panels read 0, not "No data".
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.registry import REGISTRY

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)
OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25)
PER_TOKEN_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0)
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576)
OTHER = "other"

REQUESTS = Counter("prism_requests", "HTTP requests handled", ["route", "model", "status"])
REQUEST_LATENCY = Histogram(
    "prism_request_duration_seconds",
    "End-to-end request latency",
    ["route", "model"],
    buckets=LATENCY_BUCKETS,
)
TIME_TO_FIRST_TOKEN = Histogram(
    "gen_ai_server_time_to_first_token_seconds",
    "Time to first streamed token",
    ["model"],
    buckets=LATENCY_BUCKETS,
)
TIME_PER_OUTPUT_TOKEN = Histogram(
    "gen_ai_server_time_per_output_token_seconds",
    "Decode time per output token after the first",
    ["model"],
    buckets=PER_TOKEN_BUCKETS,
)
GATEWAY_OVERHEAD = Histogram(
    "prism_gateway_overhead_seconds",
    "Time spent in the gateway outside provider calls",
    ["route"],
    buckets=OVERHEAD_BUCKETS,
)
TOKEN_USAGE = Histogram(
    "gen_ai_client_token_usage",
    "Tokens per request",
    ["model", "provider", "token_type"],
    buckets=TOKEN_BUCKETS,
)
TOKENS = Counter("prism_tokens", "Tokens processed", ["model", "provider", "tier", "direction"])
COST = Counter(
    "prism_cost_usd", "Cost in US dollars from the configured prices", ["model", "provider", "tier"]
)
ERRORS = Counter("prism_errors", "Errors returned to clients", ["type"])
APP_ROLLOUT_CHANGES = Counter(
    "prism_app_rollout_changes", "Application rollout changes (set, promote, rollback)", ["action"]
)
APP_ROLLOUT_CALLS = Counter(
    "prism_app_rollout_calls", "Application calls under a live rollout, by what they got", ["kind"]
)

PROVIDER_REQUESTS = Counter("prism_provider_requests", "Calls that reached a provider", ["provider", "model"])
PROVIDER_ATTEMPTS = Counter("prism_provider_attempts", "Provider attempts by outcome", ["target", "outcome"])
UPSTREAM_CONNECTIONS = Gauge(
    "prism_upstream_connections",
    "Open connections of the wire adapter's HTTP client to upstreams (busy or idle in the pool)",
    multiprocess_mode="livesum",
)
UPSTREAM_CONNECTS = Counter(
    "prism_upstream_connects",
    "Connections the wire adapter's HTTP client opened (ok) or failed to open (error); "
    "requests per connect shows keep-alive reuse",
    ["outcome"],
)
RETRIES = Counter("prism_retries", "Retries on the same target", ["target"])
FALLBACKS = Counter("prism_fallbacks", "Fallbacks from one target to the next", ["from_target", "to_target"])
CIRCUIT_STATE = Gauge(
    "prism_circuit_state",
    "Circuit state per target: 0 closed, 1 half-open, 2 open",
    ["target"],
    multiprocess_mode="livemax",
)
CIRCUIT_TRANSITIONS = Counter("prism_circuit_transitions", "Circuit state changes", ["target", "state"])

CACHE_REQUESTS = Counter("prism_cache_requests", "Response cache lookups", ["result"])
CACHE_WRITES_BEHIND = Gauge(
    "prism_cache_writes_behind",
    "Answers sent to the client whose cache write is still on its way to Redis",
    multiprocess_mode="livesum",
)
AUTH_CACHE = Counter(
    "prism_auth_cache",
    "API-key lookups by the in-process cache: hit, load (DB read), joined (shared a load); during a "
    "database outage: stale (own entry), shared (another worker's, from Redis) or unavailable (503)",
    ["result"],
)
AUTH_SNAPSHOT = Counter(
    "prism_auth_snapshots",
    "Key/user/session states shared through Redis for database outages: write, read, failed",
    ["op"],
)
QUOTA_REJECTIONS = Counter("prism_quota_rejections", "Requests refused by a quota", ["limit"])
BACKEND_ERRORS = Counter("prism_backend_errors", "Cache/quota backend failures (Redis)", ["operation"])
GUARD_ACTIONS = Counter("prism_guard_actions", "Guardrail verdicts", ["stage", "category", "action"])
GUARD_REGENERATIONS = Counter(
    "prism_guard_regenerations",
    "Answers asked for again after an output-guard block, by outcome: passed, blocked (refused), "
    "failed (the second call failed), too_late (a stream blocked after its first token)",
    ["mode", "outcome"],
)
INTENTS = Counter("prism_intents", "Intent classification results", ["intent", "tier"])

SHADOW_CALLS = Counter("prism_shadow_calls", "Shadow calls by outcome", ["model", "outcome"])
SHADOW_DROPPED = Counter(
    "prism_shadow_dropped", "Shadow calls dropped (queue full, spend cap)", ["model", "reason"]
)
SHADOW_AGREEMENT = Histogram(
    "prism_shadow_agreement",
    "Agreement between primary and shadow answers",
    ["model"],
    buckets=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0),
)

USAGE_QUEUE_DEPTH = Gauge(
    "prism_usage_queue_depth", "Usage records waiting to be written", multiprocess_mode="livesum"
)
QUOTA_SETTLE_QUEUE = Gauge(
    "prism_quota_settle_queue_depth",
    "Quota settlements queued for the next batched round trip",
    multiprocess_mode="livesum",
)
USAGE_FLUSH_LATENCY = Histogram(
    "prism_usage_flush_seconds", "Time to write one batch of usage records", buckets=LATENCY_BUCKETS
)
USAGE_RECORDS = Counter("prism_usage_records", "Usage records by outcome", ["outcome"])
USAGE_DROPPED = Counter("prism_usage_dropped", "Usage records dropped (must stay 0)")

INFLIGHT = Gauge("prism_inflight_requests", "Requests in flight", multiprocess_mode="livesum")
OPEN_STREAMS = Gauge("prism_open_streams", "SSE streams open", multiprocess_mode="livesum")
CONFIG_RELOADS = Counter("prism_config_reloads", "Routing config reloads", ["outcome"])
DURABLE_RUNS = Counter(
    "prism_durable_runs",
    "Durable flow runs by event (started, resumed, interrupted, succeeded, failed, lease_lost, released)",
    ["graph", "event"],
)
DURABLE_STEP_LATENCY = Histogram(
    "prism_durable_step_duration_seconds",
    "One attempt of a durable flow's step (node), by outcome (ok, error, interrupt)",
    ["graph", "node", "outcome"],
    buckets=LATENCY_BUCKETS,
)
DURABLE_RUNS_ACTIVE = Gauge(
    "prism_durable_runs_active", "Durable runs this worker executes", multiprocess_mode="livesum"
)
DURABLE_EVENTS = ("started", "resumed", "interrupted", "succeeded", "failed", "lease_lost", "released")


class LabelSet:
    """A bounded set of label values; anything else is reported as ``other``."""

    __slots__ = ("_values",)

    def __init__(self, values: Iterable[str] = ()) -> None:
        self._values = frozenset(values)

    def __call__(self, value: str | None) -> str:
        return value if value is not None and value in self._values else OTHER


def mark_process_dead() -> None:
    """On worker exit in multiprocess mode: remove this pid's ``live*`` gauge files."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


_LIVE_GAUGE_FILE = re.compile(r"^gauge_live[a-z]+_(\d+)\.db$")


def _process_running(pid: int) -> bool:
    """True while ``pid`` runs (a zombie — dead, not yet reaped by its parent — does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def reap_dead_workers(directory: str | None = None) -> list[int]:
    """Remove the ``live*`` gauge files of workers that are gone (SIGKILL, OOM: no lifespan exit).

    Called before every multiprocess collection, so open streams, in-flight requests and circuit
    states of a killed worker stop counting at the next scrape. Returns the pids reaped."""
    path = directory or os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not path:
        return []
    dead: set[int] = set()
    try:
        names = os.listdir(path)
    except OSError:
        return []
    for name in names:
        match = _LIVE_GAUGE_FILE.match(name)
        if match is not None and not _process_running(int(match.group(1))):
            dead.add(int(match.group(1)))
    for pid in dead:
        multiprocess.mark_process_dead(pid, path)  # type: ignore[no-untyped-call]
    return sorted(dead)


def render_metrics() -> tuple[bytes, str]:
    """The exposition for ``/metrics``: this process's registry, or all workers' in multiprocess mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        reap_dead_workers()
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


# -- experiments (issue #5): label values are experiment and arm names from the config only ------
EXPERIMENT_REQUESTS = Counter(
    "prism_experiment_requests", "Requests per experiment arm by outcome", ["experiment", "arm", "status"]
)
EXPERIMENT_DURATION = Histogram(
    "prism_experiment_request_duration_seconds",
    "End-to-end request duration per experiment arm",
    ["experiment", "arm"],
    buckets=LATENCY_BUCKETS,
)
EXPERIMENT_COST = Counter("prism_experiment_cost_usd", "Cost per experiment arm", ["experiment", "arm"])
EXPERIMENT_TOKENS = Counter(
    "prism_experiment_tokens", "Tokens per experiment arm", ["experiment", "arm", "direction"]
)
CANARY_PERCENT = Gauge(
    "prism_canary_percent", "Current canary share in percent", ["experiment"], multiprocess_mode="livemax"
)
CANARY_ROLLBACKS = Counter("prism_canary_rollbacks", "Automatic canary rollbacks", ["experiment"])

# -- smart routing (issue #6): tier labels are tier names from the config only -------------------
INTENT_ESCALATIONS = Counter(
    "prism_intent_escalations", "LLM escalations of low-confidence intents by outcome", ["outcome"]
)
INTENT_ESCALATION_DURATION = Histogram(
    "prism_intent_escalation_duration_seconds",
    "Duration of LLM intent escalations (all outcomes)",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0, 5.0),
)
INTENT_STAGE = Counter(
    "prism_intent_stage",
    "Intent classifications by the stage that decided (fast n-gram heads or encoder)",
    ["stage"],
)
INTENT_BATCH_SIZE = Histogram(
    "prism_intent_batch_size",
    "Prompts per encoder pass of the intent batching thread",
    buckets=(1, 2, 4, 8, 16, 32, 64),
)
INTENT_QUEUE_WAIT = Histogram(
    "prism_intent_queue_wait_seconds",
    "Time a prompt waited for the intent batching thread before its encoder pass started",
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1),
)
ROUTE_STICKY = Counter(
    "prism_route_sticky_lookups", "Conversation tier stickiness lookups by result", ["result"]
)
ROUTE_CAPPED = Counter(
    "prism_route_capped", "auto routes capped by a key or user max_route_tier", ["from_tier", "to_tier"]
)
ROUTE_CALIBRATED = Counter(
    "prism_route_calibrated",
    "auto routes whose tier a calibrated routing.complexity_thresholds entry decided (issue #21)",
    ["intent", "language", "tier"],
)

# -- shadow judge (issue #5): model labels are configured names (judge model or shadow model) -----
SHADOW_JUDGE_CALLS = Counter(
    "prism_shadow_judge_calls",
    "Shadow judge calls by outcome (ok, parse_error, timeout, provider error code); model = the judge",
    ["model", "outcome"],
)
SHADOW_JUDGE_DROPPED = Counter(
    "prism_shadow_judge_dropped",
    "Sampled shadow pairs not judged (busy, spend_cap, no_model); model = the shadow model",
    ["model", "reason"],
)
SHADOW_JUDGE_SCORE = Histogram(
    "prism_shadow_judge_score",
    "Judge scores 1-10 per shadow model and side (primary, shadow)",
    ["model", "side"],
    buckets=(1, 2, 3, 4, 5, 6, 7, 8, 9, 10),
)
SHADOW_JUDGE_DURATION = Histogram(
    "prism_shadow_judge_duration_seconds", "Shadow judge call duration", ["model"], buckets=LATENCY_BUCKETS
)


# -- usage ledger (issue #17) ------------------------------------------------------------------------
USAGE_QUARANTINED = Counter(
    "prism_usage_quarantined",
    "Usage records the database could not store, kept in usage_quarantine (must stay 0)",
    ["reason"],
)
USAGE_PENDING_SEGMENTS = Gauge(
    "prism_usage_pending_segments",
    "Sealed usage segments of a worker waiting for the database",
    multiprocess_mode="livesum",
)

# -- background workers (gateway/background.py): label ``worker`` is one of its WorkerName literals ----
WORKER_RUNS = Counter("prism_worker_runs", "Rounds run by a background worker", ["worker"])
WORKER_FAILURES = Counter(
    "prism_worker_failures", "Rounds of a background worker that raised or reported a failure", ["worker"]
)
WORKER_LAST_SUCCESS = Gauge(
    "prism_worker_last_success_timestamp_seconds",
    "Unix time of a background worker's last successful round (0: none yet); the stalest live process",
    ["worker"],
    multiprocess_mode="livemin",
)

# -- served-model policy and cluster-wide config reload (issue #18, helper "scope") ----------------
ROUTE_POLICY = Counter(
    "prism_route_policy",
    "Routes changed by a key's or user's allowed_models: filtered (targets removed), reassigned "
    "(experiment/split arm replaced), shadow_filtered, denied (403 model_not_allowed)",
    ["outcome"],
)
CONFIG_INFO = Gauge(
    "prism_config_info",
    "1 for the routing config hash this worker runs (the file's sha256 prefix), 0 for earlier ones",
    ["hash"],
    multiprocess_mode="liveall",
)


# -- zero-initialised series and helpers for the request path (issue #26) -------------------------
ERROR_TYPES = (
    "invalid_request_error",
    "authentication_error",
    "permission_error",
    "not_found_error",
    "rate_limit_error",
    "insufficient_quota",
    "upstream_error",
    "timeout_error",
    "server_error",
    "stream_error",
)
"""Every ``type`` label of ``prism_errors_total`` (the OpenAI error types of ``gateway/errors.py``
plus ``stream_error``)."""
REQUEST_STATUSES = ("200", "400", "401", "403", "404", "429", "499", "500", "502", "503", "504")
"""Statuses pre-created per model on the chat route, so per-model error ratios read 0."""
CHAT_ROUTE = "/v1/chat/completions"


def zero_initialise(
    *,
    models: Iterable[str],
    targets: Iterable[str],
    shadow_models: Iterable[str] = (),
) -> None:
    """Create the series of bounded label sets at 0 (idempotent; cheap): request and error
    counters per configured model label (plus ``other`` and ``none``), provider attempts, retries
    and circuit state per target, cache and usage outcomes, shadow outcomes per shadow model."""
    labels = {*models, OTHER, "none"}
    for model in labels:
        for status in REQUEST_STATUSES:
            REQUESTS.labels(route=CHAT_ROUTE, model=model, status=status)
        REQUEST_LATENCY.labels(route=CHAT_ROUTE, model=model)
    for error_type in ERROR_TYPES:
        ERRORS.labels(type=error_type)
    for result in ("hit", "miss", "bypass", "error"):
        CACHE_REQUESTS.labels(result=result)
    for outcome in (
        "queued",
        "written",
        "duplicate",
        "retried",
        "replayed",
        "quarantined",
        "unpersisted",
        "dropped",
    ):
        USAGE_RECORDS.labels(outcome=outcome)
    for outcome in ("ok", "unchanged", "rejected"):
        CONFIG_RELOADS.labels(outcome=outcome)
    for reason in ("unstorable_text", "integer_out_of_range", "non_finite_number", "database_refused"):
        USAGE_QUARANTINED.labels(reason=reason)
    for limit in ("rpm", "tpm", "tpd", "budget", "other"):
        QUOTA_REJECTIONS.labels(limit=limit)
    for operation in (
        "quota_reserve",
        "quota_settle",
        "quota_usage",
        "cache_get",
        "cache_set",
        "cache_lock",
        "cache_unlock",
        "cache_wait",
    ):
        BACKEND_ERRORS.labels(operation=operation)
    for target in targets:
        for outcome in ("ok", "error", "retry_budget", "circuit_open"):
            PROVIDER_ATTEMPTS.labels(target=target, outcome=outcome)
        RETRIES.labels(target=target)
        CIRCUIT_STATE.labels(target=target)  # created at 0 (closed); an existing state is kept
        for state in ("open", "half_open", "closed"):
            CIRCUIT_TRANSITIONS.labels(target=target, state=state)
    for model in shadow_models:
        for outcome in ("ok", "error", "timeout"):
            SHADOW_CALLS.labels(model=model, outcome=outcome)
        for reason in ("queue_full", "spend_cap"):
            SHADOW_DROPPED.labels(model=model, reason=reason)
        SHADOW_AGREEMENT.labels(model=model)
        for winner in ("shadow", "primary", "tie"):
            SHADOW_JUDGE_VERDICTS.labels(model=model, winner=winner)


def zero_config_series(config: Any) -> None:
    """``zero_initialise`` for a routing config (``RoutingConfig``), called on every config load."""
    targets = list(config.models)
    shadows = {name for alias in config.aliases.values() for name in alias.shadow}
    zero_initialise(models=[*targets, *config.aliases], targets=targets, shadow_models=sorted(shadows))
    publish_models({name: (str(model.tier), str(model.provider)) for name, model in config.models.items()})


def zero_experiment_series(arms: Mapping[str, Iterable[str]]) -> None:
    """Per experiment arm: request outcomes, duration and cost at 0 (labels from the config only)."""
    for experiment, names in arms.items():
        for arm in names:
            for status in ("ok", "error", "incomplete", "rejected"):
                EXPERIMENT_REQUESTS.labels(experiment=experiment, arm=arm, status=status)
            EXPERIMENT_DURATION.labels(experiment=experiment, arm=arm)
            EXPERIMENT_COST.labels(experiment=experiment, arm=arm)
            for direction in ("input", "output"):
                EXPERIMENT_TOKENS.labels(experiment=experiment, arm=arm, direction=direction)
            EXPERIMENT_ATTEMPTS.labels(experiment=experiment, arm=arm, kind="attempt")
            EXPERIMENT_ATTEMPTS.labels(experiment=experiment, arm=arm, kind="retry_or_fallback")
            EXPERIMENT_ATTEMPTS.labels(experiment=experiment, arm=arm, kind="fallback")


EXPERIMENT_ATTEMPTS = Counter(
    "prism_experiment_attempts",
    "Upstream attempts per experiment arm: every attempt, those beyond the first (retry or "
    "fallback), and requests that fell back — the failures retries hide from the client",
    ["experiment", "arm", "kind"],
)
MODEL_INFO = Gauge(
    "prism_model_info",
    "1 per configured model with its routing tier and provider (0 once a reload removed or changed it); "
    "join on model for per-tier views, e.g. tokens by routing tier — the tier label of "
    "prism_tokens_total and prism_cost_usd_total is the caller's quota tier",
    ["model", "tier", "provider"],
    multiprocess_mode="livemax",
)
SHADOW_JUDGE_VERDICTS = Counter(
    "prism_shadow_judge_verdicts",
    "Judged shadow pairs by winner (shadow, primary, tie); model = the shadow model",
    ["model", "winner"],
)
_model_info: dict[str, tuple[str, str]] = {}
"""The (tier, provider) this process last published per model, so a reload can zero the old ones."""


def publish_models(models: Mapping[str, tuple[str, str]]) -> None:
    """``prism_model_info`` for the loaded config: {model: (tier, provider)}."""
    for model, (tier, provider) in list(_model_info.items()):
        if models.get(model) != (tier, provider):
            MODEL_INFO.labels(model=model, tier=tier, provider=provider).set(0)
            del _model_info[model]
    for model, (tier, provider) in models.items():
        MODEL_INFO.labels(model=model, tier=tier, provider=provider).set(1)
        _model_info[model] = (tier, provider)


EMBEDDING_INPUTS = Counter("prism_embedding_inputs", "Inputs embedded on /v1/embeddings", ["model", "source"])
"""``source``: ``upstream`` (the model ran) or ``cache``."""
# -- built-in server-side tools (issue #22): tool = a registered tool's name or ``other``; status =
# ``ok`` or one of the error codes of gateway/tools/base.py ---------------------------------------
TOOL_CALL_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
TOOL_LOOP_ROUNDS = Counter(
    "prism_tool_loop_rounds", "Tool loop rounds: model answers whose server tool calls ran"
)
TOOL_LOOP_STOPS = Counter(
    "prism_tool_loop_stops", "Tool loops ended by a bound before the model answered", ["reason"]
)
TOOL_AUDIT_DROPPED = Counter("prism_tool_audit_dropped", "Tool audit rows dropped (writer buffer full)")
TOOL_CALLS = Counter("prism_tool_calls", "Server-side tool calls by outcome", ["tool", "status"])
TOOL_CALL_DURATION = Histogram(
    "prism_tool_call_duration_seconds",
    "Duration of a server-side tool call (argument parsing to rendered result)",
    ["tool"],
    buckets=TOOL_CALL_BUCKETS,
)


def zero_tool_series(tools: Iterable[str], statuses: Iterable[str]) -> None:
    """Tool call counters and durations at 0 for every offered tool (and ``other``)."""
    codes = tuple(statuses)
    for tool in {*tools, OTHER}:
        for status in codes:
            TOOL_CALLS.labels(tool=tool, status=status)
        TOOL_CALL_DURATION.labels(tool=tool)


# MCP (docs/mcp.md). ``server`` is a configured MCP server name (a bounded set from the routing YAML).
MCP_CLIENT_UP = Gauge(
    "prism_mcp_client_up",
    "1 while the MCP server is connected and answering",
    ["server"],
    multiprocess_mode="livemax",
)
MCP_CLIENT_TOOLS = Gauge(
    "prism_mcp_client_tools",
    "Tools of the MCP server offered by Prism",
    ["server"],
    multiprocess_mode="livemax",
)
MCP_CLIENT_CONNECTS = Counter(
    "prism_mcp_client_connects", "Connection attempts to an MCP server by outcome", ["server", "outcome"]
)
MCP_CLIENT_REFRESHES = Counter(
    "prism_mcp_client_tool_refreshes", "tools/list refreshes after tools/list_changed", ["server"]
)
MCP_SERVER_CALLS = Counter(
    "prism_mcp_server_calls", "Tool calls served on Prism's /mcp endpoint by outcome", ["tool", "status"]
)
MCP_SERVER_REQUESTS = Counter(
    "prism_mcp_server_requests", "Requests to Prism's /mcp endpoint by outcome", ["outcome"]
)
JOBS_SUBMITTED = Counter(
    "prism_jobs_submitted",
    "Jobs accepted by POST /v1/jobs, by type (bounded: the configured types)",
    ["type"],
)
JOBS_FINISHED = Counter(
    "prism_jobs_finished", "Job outcomes written (once per job), by type and status", ["type", "status"]
)
JOBS_RUNNING = Gauge("prism_jobs_running", "Jobs this process executes now", multiprocess_mode="livesum")
JOBS_REJECTED = Counter(
    "prism_jobs_rejected", "Submissions refused before queueing, by HTTP status", ["status"]
)
