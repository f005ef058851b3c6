"""The ``tools:`` section of the routing config: limits of the built-in server-side tools.

The tools live in ``gateway/tools/`` (design and guarantees in docs/tools.md). Every limit has a
safe default, so a YAML block only states what differs; the bounds (``le=``) keep an operator's
typo from turning a limit off.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

BuiltinTool = Literal["calculator", "datetime", "python"]


class CalculatorLimits(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_expression_chars: int = Field(default=1000, ge=1, le=100_000)
    max_depth: int = Field(default=32, ge=1, le=200)
    """Nesting of the parsed expression (parentheses, operators, calls)."""
    max_exponent: int = Field(default=10_000, ge=1, le=1_000_000)
    """Largest integer exponent of ``**`` with an exact base (``2**10000`` passes, ``9**9**9`` not)."""
    max_digits: int = Field(default=4_000, ge=10, le=4_300)
    """Largest number of decimal digits of any intermediate integer (numerator or denominator); at
    most Python's own limit on converting an integer to text (4300 digits)."""
    precision: int = Field(default=50, ge=10, le=1000)
    """Significant digits of inexact results (``sqrt(2)``, ``log(3)``): ``decimal`` context precision."""


class SandboxLimits(BaseModel):
    """OS limits of one code-execution run (bubblewrap namespaces + rlimits; docs/tools.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bwrap: Path = Path("/usr/bin/bwrap")
    python: Path | None = None
    """The interpreter run inside; it must live under a read-only bound prefix (``ro_binds``).
    Unset: the first of ``/usr/bin/python3`` (Debian) and ``/usr/local/bin/python3`` (the image)."""
    ro_binds: tuple[Path, ...] = (Path("/usr"),)
    """Host paths mounted read-only inside; nothing else of the host's filesystem is visible."""
    timeout_s: float = Field(default=5.0, gt=0, le=120)
    """Wall-clock bound of a run; past it every process of the sandbox is killed."""
    cpu_s: int = Field(default=4, ge=1, le=120)
    """RLIMIT_CPU per process (SIGXCPU/SIGKILL past it)."""
    memory_mb: int = Field(default=256, ge=32, le=8192)
    """RLIMIT_AS per process (address space)."""
    max_processes: int = Field(default=8, ge=2, le=1024)
    """RLIMIT_NPROC of the sandbox's own uid (the interpreter, bubblewrap's init and children)."""
    run_memory_mb: int = Field(default=512, ge=32, le=65536)
    """Memory of all a run's processes and scratch files together, enforced by a cgroup where one
    is available (``cgroup``); without one only the per-process ``memory_mb`` applies."""
    cgroup: Literal["auto", "off", "required"] = "auto"
    """``auto``: a per-slot memory cgroup when the gateway runs as root with a writable cgroup-v1
    memory hierarchy; ``required``: the sandbox is unavailable without one; ``off``: never."""
    max_output_bytes: int = Field(default=64 * 1024, ge=1024, le=16 * 1024 * 1024)
    """Per stream (stdout, stderr); the run is killed when either exceeds it."""
    scratch_mb: int = Field(default=16, ge=1, le=1024)
    """Size of the writable tmpfs at ``/scratch`` (also the RLIMIT_FSIZE of one file)."""
    max_open_files: int = Field(default=64, ge=16, le=4096)
    max_code_chars: int = Field(default=100_000, ge=100, le=1_000_000)
    max_concurrency: int = Field(default=4, ge=1, le=256)
    """Runs at once in this process; more wait for a slot (within their own timeout)."""
    seccomp: bool = True
    """Load the deny-list seccomp filter (``gateway/tools/seccomp.py``; x86-64 and arm64). On
    another architecture the sandbox is unavailable unless this is switched off."""
    uid_base: int = Field(default=61_000, ge=1000, le=2**31 - 1024)
    """When the gateway runs as root, run *i* of ``max_concurrency`` runs as uid/gid
    ``uid_base + i`` (unused by anything else), so the process limit counts that run only."""


ENV_NAME = r"^[A-Z_][A-Z0-9_]*$"


class McpServerConfig(BaseModel):
    """One MCP server Prism connects to (docs/mcp.md). Its tools are offered as
    ``mcp__<name>__<tool>``. Secrets never live in the YAML: ``env`` and ``headers`` map a name to
    the *name of an environment variable* of the gateway, read at connect time."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,31}$")
    """Lower-case letters, digits and ``-`` (it is part of every tool name and a metric label)."""
    label: str | None = Field(default=None, max_length=200)
    """What operators and ``server_label`` in requests call it; defaults to ``name``."""
    transport: Literal["stdio", "streamable_http"]
    command: str | None = None
    """stdio: the program to start (searched in ``PATH``)."""
    args: tuple[str, ...] = ()
    cwd: Path | None = None
    env: dict[str, str] = Field(default_factory=dict)
    """stdio: variables of the server's environment → names of the gateway's variables holding the
    values (``{GITHUB_TOKEN: PRISM_MCP_GITHUB_TOKEN}``). Nothing else of the gateway's environment is
    passed but the SDK's safe defaults (``PATH``, ``HOME``, ``LANG``, …)."""
    url: str | None = Field(default=None, pattern=r"^https?://")
    """streamable_http: the endpoint, e.g. ``https://mcp.internal/mcp``."""
    headers: dict[str, str] = Field(default_factory=dict)
    """streamable_http: header name → name of the gateway's variable holding the value."""
    timeout_s: float = Field(default=30.0, gt=0, le=600)
    """Bound on one tool call of this server (also bounded by ``tools.timeout_s``)."""
    connect_timeout_s: float = Field(default=15.0, gt=0, le=300)
    """Bound on start-up + ``initialize`` + the first ``tools/list``."""
    ping_interval_s: float = Field(default=15.0, ge=0.05, le=3600)
    """How often a connected server is pinged; a failed ping reconnects."""
    max_result_chars: int = Field(default=16_000, ge=256, le=1_000_000)
    """Text of one result kept for the model; longer is cut (``truncated: true``)."""
    max_tools: int = Field(default=64, ge=1, le=1024)
    """At most this many tools of the server are offered (the rest are logged and left out)."""
    include: tuple[str, ...] = ()
    """Tool names (the server's own, ``fnmatch`` patterns) to offer; empty: all."""
    exclude: tuple[str, ...] = ()
    """Tool names (patterns) never offered, even when ``include`` matches."""
    reconnect_max_s: float = Field(default=30.0, ge=0.05, le=3600)
    """Ceiling of the exponential back-off between reconnects (from 0.1 s, doubling)."""

    @model_validator(mode="after")
    def _check_transport(self) -> McpServerConfig:
        if self.transport == "stdio":
            if not self.command:
                raise ValueError("a stdio MCP server needs a command")
            if self.url is not None or self.headers:
                raise ValueError("url and headers are for streamable_http servers")
        else:
            if not self.url:
                raise ValueError("a streamable_http MCP server needs a url")
            if self.command is not None or self.args or self.env:
                raise ValueError("command, args and env are for stdio servers")
        for kind, mapping in (("env", self.env), ("headers", self.headers)):
            for key, variable in mapping.items():
                if not re.fullmatch(ENV_NAME, variable):
                    raise ValueError(
                        f"{kind}.{key} must name an environment variable (A-Z, 0-9, _), not hold a value"
                    )
        return self

    @property
    def display(self) -> str:
        return self.label or self.name


class McpEndpointConfig(BaseModel):
    """Prism's own MCP server on ``/mcp`` (docs/mcp.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    admin_only: tuple[str, ...] = ()
    """Tool names (``fnmatch`` patterns, e.g. ``python`` or ``mcp__fs__*``) offered on ``/mcp`` to
    admins only."""


class RegenerateConfig(BaseModel):
    """One bounded regeneration when the output guard blocks an answer (docs/tools.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = False
    model: str | None = None
    """The model (or alias target) asked again; unset: the model that was blocked."""
    note: str = (
        "Your previous answer was withheld by the gateway's output policy. Answer again without "
        "disallowed content, personal data or secrets."
    )
    """A system note appended to the conversation for the second attempt."""
    streams: bool = True
    """Streams too, before their first token: the output guard judges a stream's first
    ``stream_hold_chars`` before anything is sent (docs/tools.md, "Regeneration")."""
    stream_hold_chars: int = Field(default=128, ge=0, le=16_000)
    """Characters of a stream's answer (text and tool call arguments) the guard sees before the 200
    and the first token go out; 0: only until the guard releases its first text."""


class LoopConfig(BaseModel):
    """Bounds of the server-side tool loop; each ends the loop with a documented outcome."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_rounds: int = Field(default=6, ge=1, le=64)
    """Model calls answered with server tool calls that Prism executes; the next one past this
    ends the loop with ``finish_reason: "length"`` and ``prism_tool_loop.stopped: "max_rounds"``."""
    max_calls_per_round: int = Field(default=8, ge=1, le=128)
    """Server calls executed from one answer; the rest get a ``limit_exceeded`` result."""
    max_total_tokens: int | None = Field(default=None, ge=1)
    """Token budget of the whole loop (every model call summed): ``stopped: "budget"`` past it."""
    max_cost_usd: float | None = Field(default=None, gt=0)
    """Cost budget of the whole loop (every model call summed): ``stopped: "budget"`` past it."""
    keepalive_s: float = Field(default=2.0, gt=0, le=60)
    """A streamed request with server tools gets an SSE comment this often while tools run."""
    store_payloads: bool = False
    """Store tool arguments and results in the audit table (``tool_calls``); off: sizes only."""
    guard_results: bool = True
    """Pass tool results through the injection detector and the destination's PII policy."""


class ToolsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: tuple[BuiltinTool, ...] = ("calculator", "datetime", "python")
    """Built-in tools offered by the registry (a tool whose sandbox cannot start is left out)."""
    timeout_s: float = Field(default=10.0, gt=0, le=300)
    """Bound on one call of any tool (the sandbox's own ``timeout_s`` is applied inside it)."""
    max_result_chars: int = Field(default=16_000, ge=256, le=1_000_000)
    """A result longer than this is cut, with ``truncated: true`` in it."""
    max_argument_chars: int = Field(default=200_000, ge=256, le=4_000_000)
    calculator: CalculatorLimits = CalculatorLimits()
    sandbox: SandboxLimits = SandboxLimits()
    loop: LoopConfig = LoopConfig()
    """Bounds of the tool loop (docs/tools.md, "The tool loop")."""
    regenerate: RegenerateConfig = RegenerateConfig()
    """One bounded regeneration instead of a refusal when the output guard blocks (a whole answer,
    or a stream before its first token)."""
    mcp_servers: tuple[McpServerConfig, ...] = ()
    """MCP servers whose tools Prism offers (connected at start-up; docs/mcp.md)."""
    mcp_endpoint: McpEndpointConfig = McpEndpointConfig()

    @model_validator(mode="after")
    def _unique_servers(self) -> ToolsConfig:
        names = [server.name for server in self.mcp_servers]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"two MCP servers are named {duplicates[0]!r}")
        return self
