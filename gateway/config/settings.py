"""Infrastructure settings and secrets from ``GATEWAY_*`` environment variables.

Built once by ``get_settings()`` at start-up and injected; nothing reads the
environment at import. Behaviour that operators tune per model (routing,
timeouts, prices, guardrails, quotas) lives in the routing YAML instead.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_DEV_JWT_SECRET = "dev-insecure-jwt-secret-change-me-0123456789"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_", env_file=None, extra="ignore", frozen=True)

    env: Literal["development", "test", "production"] = "development"
    host: str = "127.0.0.1"
    port: int = 8080
    config: Path = Path("config/prism.yaml")

    database_url: str = "sqlite+aiosqlite:///./var/prism.db"
    database_pool_size: int = 10
    redis_url: str | None = None
    redis_timeout_ms: int = 250
    """Bound on every Redis command (and on waiting for a pooled connection). Past it the cache
    misses and quotas follow ``fail_mode``. It counts the gateway's own event-loop delay too, so it
    must cover a saturated worker's scheduling latency, not only Redis's answer time."""
    redis_key_prefix: str = "prism"
    """Prefix of every Redis key (cache, quotas): lets environments share one Redis."""

    auth_enabled: bool = True
    registration_open: bool | None = None
    """Self-registration (``POST /auth/register``). Unset: open in development/test, closed in production."""
    jwt_secret: SecretStr = SecretStr(_DEV_JWT_SECRET)
    jwt_algorithm: Literal["HS256", "HS384", "HS512", "RS256", "ES256"] = "HS256"
    jwt_private_key_file: Path | None = None
    jwt_public_key_file: Path | None = None
    jwt_key_id: str = "k1"
    jwt_issuer: str = "prism"
    jwt_audience: str = "prism-api"
    access_token_ttl_s: int = 900
    refresh_token_ttl_s: int = 7 * 24 * 3600
    refresh_token_absolute_ttl_s: int = 30 * 24 * 3600
    admin_email: str | None = None
    admin_password: SecretStr | None = None
    api_key_cache_ttl_s: float = 5.0

    max_body_bytes: int = 4 * 1024 * 1024
    max_messages: int = 1024
    max_total_chars: int = 2_000_000
    max_json_depth: int = 64

    log_level: str = "INFO"
    log_format: Literal["json", "console"] = "json"
    log_prompts: bool = False

    usage_batch_size: int = 500
    usage_flush_interval_s: float = 0.5
    usage_buffer_max: int = 100_000
    usage_spill_dir: Path = Path("var/usage-spill")
    """The usage ledger's segment files (``gateway/usage/segments.py``): one directory per host or
    pod, shared by its workers (and by replicas on the same host); it must survive a process restart."""
    usage_orphan_scan_s: float = 5.0
    """How often a worker looks for segments a dead worker left, to replay them."""
    usage_fsync: bool = False
    """``fsync`` each usage record: survives a host crash too, at the cost of a disk flush per request."""

    pipeline_engine: Literal["direct", "langgraph"] = "direct"
    """How the request graph runs: the direct walker of the compiled graph, or LangGraph's Pregel loop."""
    drain_timeout_s: float = 30.0
    """SIGTERM: open streams may finish for this long, then end with ``server_shutting_down``."""
    drain_delay_s: float = 0.0
    """SIGTERM: keep accepting (``/readyz`` 503) this long before closing the port (load balancers)."""
    otel_enabled: bool = False
    otel_console: bool = False

    # --- accounts, API keys, conversations, usage logs (issue #3) ---
    database_migrate_on_start: bool = True
    jwt_previous_keys: dict[str, SecretStr] = Field(default_factory=dict)
    """Verification-only keys kept during rotation: ``{"kid": "HS256:secret" | "RS256:@/path/pub.pem"}``."""
    login_max_failures_per_account: int = 5
    login_max_failures_per_ip: int = 50
    login_throttle_window_s: float = 900.0
    api_key_last_used_flush_s: float = 30.0
    usage_spill_threshold: int = 10_000
    conversation_max_messages: int = 500

    # --- config reload across workers and replicas (issue #18) ---
    replica_id: str | None = None
    """This replica's name in the config status (``/admin/config/status``); default ``host:parent-pid``."""
    config_reload_wait_s: float = Field(default=5.0, ge=0, le=60)
    """``POST /admin/config/reload`` waits at most this long for every worker to confirm the notice."""
    supervisor_pid: int | None = None
    """Set by ``python -m gateway`` for its workers (not by operators): the parent that forwards SIGHUP."""

    # --- security: throttling, client address, production surface, account lifecycle (issue #18) ---
    trusted_proxies: str = ""
    """Comma-separated addresses/CIDRs of the reverse proxies in front of the gateway. Only when the
    direct peer is one of them is ``X-Forwarded-For`` read (right to left, skipping trusted hops)."""
    login_max_failures_per_account_total: int = 100
    """Failures per account from all addresses; past it only addresses with no failures in the window
    may still try (a per-account lockout never blocks the owner from a clean address)."""
    refresh_max_failures_per_ip: int = 30
    register_max_per_ip: int = 10
    register_window_s: float = 3600.0
    refresh_grace_s: float = 20.0
    """A refresh token rotated less than this long ago may be presented once more (a second tab):
    it yields a sibling token pair instead of revoking the session."""
    refresh_grace_max_siblings: int = 2
    password_reset_ttl_s: int = 3600
    auth_cache_stale_s: float = 300.0
    """While the database is unreachable, a key or user verified within this long keeps working."""
    auth_cache_max_entries: int = 50_000
    session_check_ttl_s: float | None = None
    """How long "this login session is still active" is cached per access token's session (default:
    ``api_key_cache_ttl_s``). Bounds how late a logout reaches the other replicas."""
    docs_enabled: bool | None = None
    """``/docs``, ``/redoc``, ``/openapi.json``. Unset: served outside production, absent in production."""
    metrics_token: SecretStr | None = None
    """Bearer token ``/metrics`` requires. A production server refuses to start without one (checked
    by ``create_app``, so one-shot commands such as migrations need not set it)."""
    hsts_max_age_s: int | None = None
    """``Strict-Transport-Security`` max-age. Unset: one year in production, none elsewhere; 0 disables."""
    eval_assertions_module: str | None = None
    """Dotted path of the operator's module of custom evaluation assertions (``type: python``)."""
    eval_max_concurrency: int = Field(default=4, ge=1, le=64)
    """Calls in flight per evaluation run, at most (a run asks for fewer with ``concurrency``)."""
    eval_lease_s: float = 60.0
    """How long a replica holds a running evaluation before another may resume it (a crash)."""

    # --- durable flows: LangGraph's runtime with a checkpointer (issue #19, item 4) ---
    durable_database_url: str | None = None
    """Checkpoints and run leases of durable flows; default: ``database_url``."""
    durable_worker_id: str | None = None
    durable_lease_s: float = Field(default=30.0, gt=0)
    durable_heartbeat_s: float = Field(default=5.0, gt=0)
    durable_recovery_scan_s: float = Field(default=5.0, gt=0)
    durable_max_recoveries: int = Field(default=8, ge=1)
    durable_pool_size: int = Field(default=4, ge=1)
    durable_checkpoint_shards: int = Field(default=4, ge=1)
    """Checkpoint writers per process (one Postgres saver writes one checkpoint at a time); capped
    at ``durable_pool_size``."""
    durable_keep_checkpoints: bool = False
    durable_synchronous_commit: bool = True
    """``false``: checkpoint commits skip the WAL flush wait (see ``DurableConfig.synchronous_commit``)."""

    # --- asynchronous jobs: /v1/jobs on a task queue (issue #23, docs/jobs.md) ---
    jobs_broker_url: str | None = None
    """Celery broker (``amqp://guest:guest@127.0.0.1:5672//``). Unset: the gateway runs jobs in
    process (the embedded default), off the request path."""
    jobs_queue: str = "prism.jobs"
    """The broker queue of jobs (its dead-letter queue: ``<name>.dead``)."""
    jobs_storage_dir: Path = Path("var/jobs")
    """Where uploaded files are kept until their job ends (shared by gateway and workers)."""
    jobs_max_upload_bytes: int = Field(default=50 * 1024 * 1024, ge=1)
    jobs_max_pages: int = Field(default=200, ge=1)
    """Pages one job may have (a PDF with more is refused at submit)."""
    jobs_max_pixels: int = Field(default=80_000_000, ge=1)
    jobs_pages_per_day: int | None = None
    """Pages one key (or user) may submit per UTC day; None: no limit."""
    jobs_tokens_per_day: int | None = None
    """LLM tokens one key's jobs may use per UTC day; None: no limit."""
    jobs_types: str | None = None
    """JSON ``{"type": {"pipeline": "module:factory", "input": "file"|"text"}}`` merged over the
    built-in job types (docs/jobs.md, "Adding a pipeline")."""
    jobs_model: str = "mock-fast"
    """The configured model the jobs' LLM steps use unless a job's options name one."""
    jobs_lease_s: float = Field(default=30.0, gt=0)
    jobs_time_limit_s: float = Field(default=900.0, gt=0)
    jobs_max_attempts: int = Field(default=5, ge=1)
    jobs_inprocess_concurrency: int = Field(default=1, ge=0)
    """Jobs the gateway runs at once when there is no broker (0: none; another process runs them)."""
    jobs_webhook_secret: SecretStr | None = None
    """Signs completion webhooks (``X-Prism-Signature: t=...,v1=hmac_sha256``)."""
    jobs_ocr_dpi: int = Field(default=300, ge=72, le=600)

    # --- speech-to-text: /v1/audio/transcriptions and the transcription job (docs/audio.md) ---
    audio_sync_max_seconds: float = Field(default=60.0, gt=0)
    """Longest audio ``/v1/audio/transcriptions`` transcribes synchronously; longer: 413, use a job."""
    audio_max_upload_bytes: int = Field(default=25 * 1024 * 1024, ge=1)
    """The upload limit of ``/v1/audio/transcriptions`` (OpenAI's is 25 MB); jobs keep
    ``jobs_max_upload_bytes``."""
    audio_max_seconds: float = Field(default=4 * 3600.0, gt=0)
    """Longest audio a ``transcription`` job takes."""
    audio_seconds_per_day: float | None = None
    """Audio seconds one key (or user) may have transcribed per UTC day, sync and jobs together."""
    audio_default_model: str | None = None
    """The model of a ``transcription`` job whose options name none (default: the first configured)."""

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> Settings:
        if self.env == "production" and self.jwt_algorithm.startswith("HS"):
            secret = self.jwt_secret.get_secret_value()
            if secret == _DEV_JWT_SECRET or len(secret) < 32:
                raise ValueError("GATEWAY_JWT_SECRET must be set to a random value of at least 32 characters")
        parse_networks(self.trusted_proxies)  # a bad CIDR stops start-up, with its name
        return self

    @property
    def registration_enabled(self) -> bool:
        if self.registration_open is None:
            return self.env != "production"
        return self.registration_open

    @property
    def docs_served(self) -> bool:
        if self.docs_enabled is None:
            return self.env != "production"
        return self.docs_enabled

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def get_settings(**overrides: object) -> Settings:
    """Read the environment once; tests pass overrides instead of patching the environment."""
    return Settings(**overrides)  # type: ignore[arg-type]


def parse_networks(spec: str | Iterable[str]) -> tuple[Network, ...]:
    """``"10.0.0.0/8, 172.16.0.0/12, 127.0.0.1"`` → networks; a bad entry raises ValueError naming it."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    networks: list[Network] = []
    for raw in items:
        item = raw.strip()
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError as exc:
            raise ValueError(f"GATEWAY_TRUSTED_PROXIES: {item!r} is not an address or CIDR") from exc
    return tuple(networks)
