"""The routing config: one YAML file, validated with pydantic at start-up and on reload.

A bad file is refused with messages naming the line and the field
(``prism.yaml:12: models.mock-fast.tier: ...``); the caller keeps the running
config. Prices are US dollars per million tokens.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from gateway.config.audio import TranscriptionModelConfig
from gateway.config.embeddings import EmbeddingModelConfig
from gateway.config.experiments import ExperimentConfig, ShadowJudgeConfig
from gateway.config.guardrails import GuardrailsConfig
from gateway.config.providers import MockSettings, UpstreamHTTPSettings
from gateway.config.quotas import QuotaConfig
from gateway.config.tools import ToolsConfig


class ConfigError(Exception):
    """The routing file cannot be used; the message lists every problem with its line."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TimeoutsConfig(_Strict):
    connect_s: float = Field(default=5.0, gt=0)
    first_token_s: float = Field(default=30.0, gt=0)
    idle_s: float = Field(default=30.0, gt=0)
    total_s: float = Field(default=120.0, gt=0)


class ModelConfig(_Strict):
    provider: Literal["mock", "openai", "ollama", "anthropic"]
    model: str | None = None
    """The upstream model id; defaults to the config key."""
    tier: str = "cheap"
    base_url: str | None = None
    api_key_env: str | None = None
    enabled_if_env: str | None = None
    """Only register the model when this environment variable is set (e.g. OPENAI_API_KEY)."""
    local: bool | None = None
    client: Literal["wire", "langchain"] = "wire"
    """``provider: openai`` only: ``wire`` speaks the OpenAI protocol directly on the shared lean HTTP
    client (the fast default); ``langchain`` goes through ``langchain-openai``'s ``ChatOpenAI``."""
    price_input_per_mtok: float = Field(default=0.0, ge=0)
    price_output_per_mtok: float = Field(default=0.0, ge=0)
    price_cached_input_per_mtok: float | None = Field(default=None, ge=0)
    """Prompt tokens read from the provider's prompt cache (OpenAI ``cached_tokens``, Anthropic
    ``cache_read_input_tokens``); unset: the input price."""
    price_cache_write_per_mtok: float | None = Field(default=None, ge=0)
    """Prompt tokens written to the provider's prompt cache (Anthropic ``cache_creation_input_tokens``,
    1.25× input at 5-minute TTL); unset: the input price."""
    context_window: int = Field(default=8192, gt=0)
    max_output_tokens: int = Field(default=4096, gt=0)
    timeouts: TimeoutsConfig = TimeoutsConfig()
    deadline_s: float | None = Field(default=None, gt=0)
    """Total deadline of a request to this model (all attempts); ``retry.deadline_s`` when unset."""
    cache_ttl_s: int = Field(default=300, ge=0)
    shared_cache: bool = False
    supports_tools: bool = True
    """The model can call functions; ``auto`` prefers such a model when a request needs a tool."""
    tools: tuple[str, ...] = ()
    """Server tools offered to every request served by this model (``gateway/tools/access.py``)."""
    mock: MockSettings = MockSettings()
    http: UpstreamHTTPSettings = UpstreamHTTPSettings()
    """Proxy, CA bundle, client certificate (mTLS) and pool idle time of the upstream connection
    (``gateway/providers/transport.py``); the wire clients (``provider: openai``, ``anthropic``) only."""

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"base_url must be an http:// or https:// URL with a host, not {value!r}")
        return value

    @model_validator(mode="after")
    def _http_on_wire_only(self) -> ModelConfig:
        wire = (self.provider == "openai" and self.client == "wire") or self.provider == "anthropic"
        if not wire and not self.http.is_default:
            raise ValueError(
                "http (proxy, ca_bundle, client_cert, pool_idle_s) applies to provider: openai with "
                "client: wire only; the other clients take proxies from the environment"
            )
        return self

    def cost(
        self,
        prompt_tokens: int,
        completion_tokens: int,
        *,
        cached_tokens: int = 0,
        cache_write_tokens: int = 0,
    ) -> float:
        """USD for one call. ``prompt_tokens`` include the cache reads and writes; those are priced at
        their own rates when configured (docs/operations.md "Prices")."""
        read = min(max(cached_tokens, 0), prompt_tokens)
        written = min(max(cache_write_tokens, 0), prompt_tokens - read)
        read_price = (
            self.price_input_per_mtok
            if self.price_cached_input_per_mtok is None
            else self.price_cached_input_per_mtok
        )
        write_price = (
            self.price_input_per_mtok
            if self.price_cache_write_per_mtok is None
            else self.price_cache_write_per_mtok
        )
        return (
            (prompt_tokens - read - written) * self.price_input_per_mtok
            + read * read_price
            + written * write_price
            + completion_tokens * self.price_output_per_mtok
        ) / 1e6

    def cost_of(self, usage: Any) -> float:
        """:meth:`cost` of a provider ``Usage``."""
        return self.cost(
            usage.prompt_tokens,
            usage.completion_tokens,
            cached_tokens=usage.cached_tokens,
            cache_write_tokens=usage.cache_write_tokens,
        )


class AliasConfig(_Strict):
    """An alias resolves to one model, a weighted split, or smart routing (``smart: true``)."""

    target: str | None = None
    split: dict[str, float] | None = None
    sticky: Literal["user", "api_key", "conversation", "request"] = "user"
    smart: bool = False
    shadow: list[str] = []
    shadow_sample_rate: float = Field(default=1.0, ge=0, le=1)
    shadow_spend_cap_usd: dict[str, float] = {}
    """Per shadow model: stop shadowing once this much was spent on it (per replica, since start)."""
    shadow_judge: ShadowJudgeConfig | None = None
    """A judge model scoring a sample of this alias's shadow pairs (docs/experiments.md)."""
    deadline_s: float | None = Field(default=None, gt=0)
    """Total deadline of a request to this alias; else the target model's, else ``retry.deadline_s``."""
    tools: tuple[str, ...] | None = None
    """Server tools offered to every request to this alias; unset: its target model's ``tools``."""

    @model_validator(mode="after")
    def _one_kind(self) -> AliasConfig:
        kinds = sum((self.target is not None, self.split is not None, self.smart))
        if kinds != 1:
            raise ValueError("an alias needs exactly one of target, split or smart: true")
        if self.split is not None and (
            not self.split
            or any(weight < 0 for weight in self.split.values())
            or sum(self.split.values()) <= 0
        ):
            raise ValueError("split weights must be non-negative and sum to more than 0")
        return self


THRESHOLD_LANGUAGES = frozenset({"en", "ko", "mixed", "*"})
"""Language keys of ``routing.complexity_thresholds`` (the classifier's languages, ``*`` for any)."""


class EscalationConfig(_Strict):
    """Ask a small LLM when the fast classifier is unsure (docs/routing.md). Off by default."""

    enabled: bool = False
    model: str | None = None
    """A configured model (``models``) that labels the prompt; it is called directly, no fallbacks."""
    below_confidence: float = Field(default=0.5, ge=0, le=1)
    """Escalate ``auto`` requests whose classifier confidence is below this."""
    timeout_ms: int = Field(default=300, ge=1, le=10_000)
    """The whole escalation call; on timeout (or an unparseable answer) the fast label is used."""
    trust: float = Field(default=0.9, ge=0, le=1)
    """The confidence given to a label the LLM answered."""
    max_prompt_chars: int = Field(default=2000, ge=100, le=50_000)
    """Head of the user's prompt sent to the labeller."""


class SmartRoutingConfig(_Strict):
    tiers: list[str] = ["cheap", "strong"]
    """Tiers from cheapest to most capable."""
    intent_tiers: dict[str, str] = {
        "small_talk": "cheap",
        "summarization": "cheap",
        "translation": "cheap",
        "general": "cheap",
        "coding": "strong",
        "reasoning": "strong",
    }
    strong_complexity: float = Field(default=0.6, ge=0, le=1)
    low_confidence: float = Field(default=0.5, ge=0, le=1)
    default_tier: str = "strong"
    complexity_thresholds: dict[str, dict[str, float]] = {}
    """Calibrated cheap-tier thresholds per intent and language (``make calibrate-routing``, issue #21):
    ``{intent: {en|ko|mixed|"*": t}}``. A confident ``auto`` prompt of that intent and language whose
    complexity is below ``t`` goes to the cheapest tier; otherwise to the ``strong`` rule's tier (the
    intent's tier when that is above the cheapest, else ``strong``). A language missing from an intent's
    entry falls back to its ``"*"``, then to the rule above (``strong_complexity``, ``intent_tiers``);
    empty (the default) is today's rule."""
    classify_all: bool = False
    """Classify every request (for usage analytics), not only ``auto`` ones."""
    sticky_upgrade_s: float = Field(default=600.0, ge=0)
    """Once a conversation (``X-Prism-Conversation-Id`` / ``metadata.conversation_id``) needed a tier
    above the cheapest, ``auto`` keeps it at least there for this long after the last request that
    needed it; 0 turns stickiness off."""
    sticky_timeout_ms: int = Field(default=20, ge=1, le=1000)
    """The longest the router waits for the stickiness store (Redis); slower means no stickiness."""
    escalation: EscalationConfig = EscalationConfig()
    sticky_user_field: str | None = Field(default=None, pattern=r"^(header|metadata):[A-Za-z0-9_.-]{1,64}$")
    """Where the end user behind a service key is named, for ``sticky: user`` experiments and
    splits: ``header:<name>`` or ``metadata:<key>``. The key is that field, else the request's
    OpenAI ``user``, else the authenticated user (``gateway/experiments/sticky.py``)."""

    @field_validator("complexity_thresholds")
    @classmethod
    def _thresholds(cls, value: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        problems = []
        for intent, per_language in value.items():
            for language, threshold in per_language.items():
                if language not in THRESHOLD_LANGUAGES:
                    problems.append(f"{intent}.{language}: language must be one of en, ko, mixed, *")
                elif not 0.0 <= threshold <= 1.0:
                    problems.append(f"{intent}.{language}: threshold must be between 0 and 1")
        if problems:
            raise ValueError("; ".join(problems))
        return value


class RetryConfig(_Strict):
    deadline_s: float = Field(default=120.0, gt=0)
    """One total deadline per request, shared by every attempt, retry and fallback."""
    max_attempts: int = Field(default=3, ge=1, le=10)
    base_delay_s: float = Field(default=0.1, ge=0)
    max_delay_s: float = Field(default=2.0, ge=0)
    jitter: float = Field(default=0.2, ge=0, le=1)
    max_deadline_s: float = Field(default=600.0, gt=0)
    """Upper bound of a deadline asked for with the ``X-Prism-Timeout`` request header."""
    budget_ratio: float = Field(default=0.2, ge=0, le=1)
    """Retries to one target are at most this fraction of its requests over ``budget_window_s``…"""
    budget_min_per_s: float = Field(default=3.0, ge=0)
    """…but at least this many retries per second are always allowed (quiet targets still retry)."""
    budget_window_s: float = Field(default=10.0, gt=0)


class CircuitBreakerConfig(_Strict):
    failure_threshold: int = Field(default=5, ge=1)
    """Open after this many consecutive failures…"""
    failure_rate: float = Field(default=0.5, gt=0, le=1)
    """…or when this fraction of the requests over ``window_s`` failed,"""
    min_requests: int = Field(default=20, ge=1)
    """provided the window holds at least this many requests."""
    window_s: float = Field(default=30.0, gt=0)
    cooldown_s: float = Field(default=30.0, gt=0)
    max_cooldown_s: float = Field(default=300.0, gt=0)
    sync_interval_s: float = Field(default=0.2, gt=0, le=5)
    """Shared (Redis) breakers: how long a replica trusts its copy of the shared state."""


class CacheConfig(_Strict):
    enabled: bool = True
    cache_non_deterministic: bool = False


class AccessConfig(_Strict):
    """How the per-key / per-user ``allowed_models`` apply to calls the gateway makes itself."""

    shadows_exempt: bool = False
    """``true``: shadow copies of a request may call models the requesting principal may not use (the
    client never sees a shadow's answer; the operator pays for it). ``false`` (default): shadows are
    filtered by the same allow-list as the answer (docs/routing.md, "Which models a key may be served")."""


class RoutingConfig(_Strict):
    version: int = 1
    models: dict[str, ModelConfig]
    aliases: dict[str, AliasConfig] = {}
    fallbacks: dict[str, list[str]] = {}
    routing: SmartRoutingConfig = SmartRoutingConfig()
    retry: RetryConfig = RetryConfig()
    circuit_breaker: CircuitBreakerConfig = CircuitBreakerConfig()
    cache: CacheConfig = CacheConfig()
    guardrails: GuardrailsConfig = GuardrailsConfig()
    """Prompt-injection / PII / output policy per destination (docs/guardrails.md); the default
    blocks injection everywhere, masks PII before external providers and passes it to local ones."""
    quotas: QuotaConfig = QuotaConfig()
    experiments: dict[str, ExperimentConfig] = {}
    access: AccessConfig = AccessConfig()
    embeddings: dict[str, EmbeddingModelConfig] = {}
    """Models served on ``/v1/embeddings`` (``gateway/config/embeddings.py``, docs/embeddings.md)."""
    audio: dict[str, TranscriptionModelConfig] = {}
    """Models served on ``/v1/audio/transcriptions`` (``gateway/config/audio.py``, docs/audio.md)."""
    tools: ToolsConfig = ToolsConfig()
    """Limits of the built-in server-side tools: calculator, date/time, sandboxed Python (docs/tools.md)."""

    def deadline_for(self, requested: str, asked_s: float | None = None) -> float:
        """The total deadline of a request: the alias's, else its model's, else ``retry.deadline_s``;
        a client's ``X-Prism-Timeout`` (``asked_s``) replaces it, capped at ``retry.max_deadline_s``."""
        if asked_s is not None:
            return min(asked_s, self.retry.max_deadline_s)
        alias = self.aliases.get(requested)
        if alias is not None and alias.deadline_s is not None:
            return alias.deadline_s
        model = self.models.get(alias.target if alias is not None and alias.target else requested)
        if model is not None and model.deadline_s is not None:
            return model.deadline_s
        return self.retry.deadline_s

    @model_validator(mode="after")
    def _references_exist(self) -> RoutingConfig:
        known = set(self.models)
        problems = []
        for name, alias in self.aliases.items():
            if name in known:
                problems.append(f"aliases.{name}: an alias cannot have the name of a model")
            for target in [alias.target, *(alias.split or {}), *alias.shadow]:
                if target is not None and target not in known:
                    problems.append(f"aliases.{name}: unknown model {target!r}")
            problems.extend(
                f"aliases.{name}.shadow_spend_cap_usd: {model!r} is not a shadow of this alias"
                for model in alias.shadow_spend_cap_usd
                if model not in alias.shadow
            )
            judge = alias.shadow_judge
            if judge is not None and judge.model not in known:
                problems.append(f"aliases.{name}.shadow_judge.model: unknown model {judge.model!r}")
        aliases_taken: dict[str, str] = {}
        for name, exp in self.experiments.items():
            if exp.alias in known:
                problems.append(f"experiments.{name}.alias: {exp.alias!r} is the name of a model")
            if exp.enabled and exp.alias in aliases_taken:
                problems.append(
                    f"experiments.{name}.alias: {exp.alias!r} is already used by {aliases_taken[exp.alias]}"
                )
            aliases_taken.setdefault(exp.alias, name)
            problems.extend(
                f"experiments.{name}: unknown model {model!r}"
                for model in sorted(exp.models())
                if model not in known
            )
        for name, chain in self.fallbacks.items():
            if name not in known and name not in self.aliases:
                problems.append(f"fallbacks.{name}: unknown model {name!r}")
            problems.extend(
                f"fallbacks.{name}: unknown model {target!r}" for target in chain if target not in known
            )
        tiers = set(self.routing.tiers)
        problems.extend(
            f"models.{name}.tier: {model.tier!r} is not one of routing.tiers {sorted(tiers)}"
            for name, model in self.models.items()
            if model.tier not in tiers
        )
        problems.extend(
            f"routing.intent_tiers.{intent}: unknown tier {tier!r}"
            for intent, tier in self.routing.intent_tiers.items()
            if tier not in tiers
        )
        problems.extend(
            f"embeddings.{name}: the name is taken by a chat model or alias"
            for name in self.embeddings
            if name in known or name in self.aliases
        )
        problems.extend(
            f"audio.{name}: the name is taken by a chat or embedding model or an alias"
            for name in self.audio
            if name in known or name in self.aliases or name in self.embeddings
        )
        escalation = self.routing.escalation
        if escalation.enabled and escalation.model not in known:
            problems.append(f"routing.escalation.model: unknown model {escalation.model!r}")
        if problems:
            raise ValueError("; ".join(problems))
        return self


def _line_of(node: yaml.Node | None, loc: tuple[int | str, ...]) -> int | None:
    """The 1-based line of the YAML node at a pydantic error location (the deepest one that exists)."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next((value for key, value in node.value if key.value == str(part)), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            match = node.value[part]
        else:
            match = None
        if match is None:
            break
        node = match
        line = node.start_mark.line + 1
    return line


def parse_config(text: str, *, source: str = "prism.yaml") -> RoutingConfig:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        raise ConfigError(f"{where}: invalid YAML: {getattr(exc, 'problem', exc)}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the routing config must be a mapping with at least `models`")
    try:
        return RoutingConfig.model_validate(data)
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            loc = tuple(error["loc"])
            line = _line_of(node, loc)
            field = ".".join(str(part) for part in loc) or "(top level)"
            lines.append(f"{source}:{line or '?'}: {field}: {error['msg']}")
        raise ConfigError("invalid routing config:\n" + "\n".join(lines)) from exc


def load_config(path: Path) -> RoutingConfig:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read routing config {path}: {exc.strerror}") from exc
    return parse_config(text, source=path.name)
