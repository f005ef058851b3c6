"""The ``tools:`` section of the routing config: limits of the built-in server-side tools.

The tools live in ``gateway/tools/`` (design and guarantees in docs/tools.md). Every limit has a
safe default, so a YAML block only states what differs; the bounds (``le=``) keep an operator's
typo from turning a limit off.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

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
