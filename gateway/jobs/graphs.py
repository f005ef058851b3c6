"""A job's LangGraph graph: ``extract`` (for text pipelines) then the registered pipeline as a
subgraph, and the progress that a run of it reports (steps done, pages, tokens)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from gateway.agent.durable.definitions import DurableGraph
from gateway.agent.durable.pipeline import Step, StepContext, build_pipeline
from gateway.jobs.pipelines import extract_step
from gateway.jobs.registry import JobType
from gateway.pipelines.budget import TokenBudget


def job_graph(job_type: JobType, pipeline: DurableGraph, *, dpi: int) -> DurableGraph:
    child = pipeline.builder.compile(name=pipeline.name)  # a subgraph: the job's checkpointer

    async def run(value: Any, step: StepContext) -> Any:
        final = await child.ainvoke(pipeline.prepare(value), context=pipeline.context(step.run))
        output = pipeline.output(final)
        if isinstance(output, dict) and "last" in output and output.get("status") == "done":
            output = output["last"]
        return output if isinstance(output, dict) else {"output": output}

    steps = [extract_step(dpi)] if job_type.input == "text" else []
    steps.append(Step("pipeline", run, retry=None))
    return build_pipeline(f"job.{job_type.name}", steps)


def job_steps(job_type: JobType) -> list[str]:
    return ["extract", "pipeline"] if job_type.input == "text" else ["pipeline"]


@dataclass(slots=True)
class Progress:
    """What ``GET /v1/jobs/{id}`` shows while a job runs."""

    steps: list[str]
    done: list[str] = field(default_factory=list)
    step: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    updated: float = 0.0
    carried_tokens: int = 0
    """Tokens an earlier attempt of this job recorded (its finished steps are not run again)."""
    budget: TokenBudget | None = None
    """The tokens of the pipeline's model calls (``PipelineLLM``, Prism's request path) in this run."""

    def observe(self, namespace: tuple[str, ...], mode: str, chunk: Any) -> None:
        self.updated = time.monotonic()
        if mode == "custom" and isinstance(chunk, dict):
            tokens = chunk.get("tokens")
            if isinstance(tokens, int):
                self.prompt_tokens += int(chunk.get("prompt_tokens", tokens))
                self.completion_tokens += int(chunk.get("completion_tokens", 0))
            self.detail = {k: v for k, v in chunk.items() if k in ("step", "done", "of", "unit", "model")}
            if namespace:
                self.detail["pipeline_step"] = self.detail.pop("step", None)
            return
        if mode == "updates" and isinstance(chunk, dict):
            for node in chunk:
                if node.startswith("__"):
                    continue
                if not namespace and node in self.steps and node not in self.done:
                    self.done.append(node)
                    self.detail = {}
                elif namespace:
                    self.detail = {"pipeline_step": node, "state": "done"}
        remaining = [s for s in self.steps if s not in self.done]
        self.step = remaining[0] if remaining else None

    @property
    def tokens(self) -> int:
        """What the job used: its steps' own tokens and its pipeline's model calls (what
        ``GATEWAY_JOBS_TOKENS_PER_DAY`` counts; the calls' own usage records bill them)."""
        llm = self.budget.used if self.budget is not None else 0
        return self.carried_tokens + self.prompt_tokens + self.completion_tokens + llm

    def as_dict(self) -> dict[str, Any]:
        fraction = len(self.done) / len(self.steps) if self.steps else 1.0
        of, done = self.detail.get("of"), self.detail.get("done")
        if self.step is not None and isinstance(of, int) and isinstance(done, int) and of > 0:
            fraction += min(done / of, 1.0) / len(self.steps)
        return {
            "percent": round(100 * fraction, 1),
            "step": self.step,
            "steps": self.steps,
            "steps_done": list(self.done),
            "detail": self.detail,
            "tokens": self.tokens,
        }
