"""The ``python`` tool: run a Python program in the OS sandbox (``sandbox.py``) and return its output.

A program that runs and exits is a successful call whatever its exit status (a traceback on
stderr is information for the model); the limits are errors with the partial output in
``details``: ``timeout`` (wall clock), ``limit_exceeded`` (output cap, CPU seconds, killed by
a signal). A sandbox that cannot be set up makes the tool ``unavailable`` — it never runs the
code any other way.
"""

from __future__ import annotations

import signal
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from gateway.config.tools import SandboxLimits
from gateway.tools.base import ToolError, parse_arguments, schema_of
from gateway.tools.sandbox import RunOutcome, Sandbox, SandboxUnavailable


class _Arguments(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(min_length=1, description="A complete Python 3 program; print what you want to see")


class PythonTool:
    name = "python"

    def __init__(
        self,
        limits: SandboxLimits | None = None,
        *,
        sandbox: Sandbox | None = None,
        max_stream_chars: int = 5000,
    ) -> None:
        self.sandbox = sandbox or Sandbox(limits)
        self.max_stream_chars = max_stream_chars
        lim = self.sandbox.limits
        self.description = (
            "Run a Python 3 program (standard library only) in an isolated sandbox with no network "
            f"and no files except a writable /scratch ({lim.scratch_mb} MB); limits: "
            f"{lim.timeout_s:g} s, {lim.memory_mb} MB memory, {lim.max_output_bytes // 1024} KB of "
            "output. Returns exit_code, stdout and stderr."
        )
        self.parameters = schema_of(_Arguments)

    async def probe(self) -> str | None:
        try:
            outcome = await self.sandbox.run("print(6 * 7)")
        except SandboxUnavailable as exc:
            return str(exc)
        if outcome.exit_code != 0 or outcome.stdout.strip() != b"42":
            tail = outcome.stderr.decode(errors="replace").strip()[-300:]
            return f"the sandbox did not run a trivial program (exit {outcome.exit_code}): {tail}"
        return None

    async def run(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        code = parse_arguments(_Arguments, arguments).code
        lim = self.sandbox.limits
        if len(code) > lim.max_code_chars:
            raise ToolError(
                "invalid_arguments", f"the program is longer than {lim.max_code_chars} characters"
            )
        try:
            outcome = await self.sandbox.run(code)
        except SandboxUnavailable as exc:
            raise ToolError("unavailable", str(exc)) from None
        return interpret(outcome, lim, max_stream_chars=self.max_stream_chars)


def interpret(outcome: RunOutcome, limits: SandboxLimits, *, max_stream_chars: int = 5000) -> dict[str, Any]:
    """The tool result for an outcome, or the structured error for a limit that stopped it. Each
    stream is cut to ``max_stream_chars`` (head and tail kept) so the result stays readable JSON."""
    output: dict[str, Any] = {"duration_ms": round(outcome.duration_s * 1000, 1)}
    for name, raw in (("stdout", outcome.stdout), ("stderr", outcome.stderr)):
        text = raw.decode("utf-8", errors="replace")
        if len(text) > max_stream_chars:
            half = max_stream_chars // 2
            text = f"{text[:half]}\n[... {len(text) - 2 * half} characters cut ...]\n{text[-half:]}"
            output[f"{name}_cut"] = True
        output[name] = text
    if outcome.timed_out:
        raise ToolError(
            "timeout", f"the program ran longer than {limits.timeout_s:g} s and was killed", details=output
        )
    if outcome.output_exceeded:
        raise ToolError(
            "limit_exceeded",
            f"the program wrote more than {limits.max_output_bytes} bytes to stdout or stderr and was killed",
            details={"limit": "output", **output},
        )
    if outcome.oom_kills:
        output["oom_kills"] = outcome.oom_kills
    if outcome.signal is not None and outcome.oom_kills:
        reason = (
            f"the program's processes used more than {limits.run_memory_mb} MB together; the kernel "
            f"killed {outcome.oom_kills} of them"
        )
        raise ToolError(
            "limit_exceeded", reason, details={"limit": "memory", "signal": outcome.signal, **output}
        )
    if outcome.signal is not None:
        limit, reason = _signal_reason(outcome.signal, limits)
        raise ToolError(
            "limit_exceeded", reason, details={"limit": limit, "signal": outcome.signal, **output}
        )
    return {"exit_code": outcome.exit_code, **output}


def _signal_reason(sig: int, limits: SandboxLimits) -> tuple[str, str]:
    if sig == signal.SIGXCPU:
        return "cpu", f"the program used more than {limits.cpu_s} s of CPU time and was killed"
    if sig == signal.SIGKILL:
        return "killed", (
            f"the program was killed by SIGKILL (the hard CPU limit of {limits.cpu_s + 1} s, the kernel, "
            "or the program itself)"
        )
    if sig == signal.SIGXFSZ:
        return "file_size", f"the program wrote a file larger than {limits.scratch_mb} MB"
    if sig == signal.SIGSYS:
        return "syscall", "the program made a forbidden system call (seccomp) and was killed"
    name = signal.Signals(sig).name if sig in signal.Signals.__members__.values() else str(sig)
    return "signal", f"the program was killed by signal {name}"
