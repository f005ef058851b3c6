"""Prometheus metrics: names, label sets and the /metrics exposition.

Metric objects are module constants (never reassigned). Label values come from
bounded sets only: configured model/target names (anything else becomes
``other``), route templates, status codes, fixed enums. With several worker
processes set ``PROMETHEUS_MULTIPROC_DIR`` before start; ``/metrics`` then sums
every worker's values.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

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
    "API-key lookups by the in-process cache: hit, load (DB read) or joined (shared a load)",
    ["result"],
)
QUOTA_REJECTIONS = Counter("prism_quota_rejections", "Requests refused by a quota", ["limit"])
BACKEND_ERRORS = Counter("prism_backend_errors", "Cache/quota backend failures (Redis)", ["operation"])
GUARD_ACTIONS = Counter("prism_guard_actions", "Guardrail verdicts", ["stage", "category", "action"])
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


def render_metrics() -> tuple[bytes, str]:
    """The exposition for ``/metrics``: this process's registry, or all workers' in multiprocess mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
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
ROUTE_STICKY = Counter(
    "prism_route_sticky_lookups", "Conversation tier stickiness lookups by result", ["result"]
)
ROUTE_CAPPED = Counter(
    "prism_route_capped", "auto routes capped by a key or user max_route_tier", ["from_tier", "to_tier"]
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
