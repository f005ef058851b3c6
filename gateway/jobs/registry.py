"""Job types → pipelines: each job ``type`` names a durable pipeline factory by import path, so a new
pipeline (translation, say) is a module plus a config entry (``GATEWAY_JOBS_TYPES``, docs/jobs.md).

A factory is ``factory(context: PipelineContext) -> DurableGraph`` (``gateway.agent.durable``;
``build_pipeline`` makes one from steps). ``input`` says what the pipeline is given:

- ``file``: ``{"path", "content_type", "options"}`` — the uploaded file (the ``ocr`` type);
- ``text``: ``{"text", "options", "pages", "principal"}`` — the file's text, extracted first by the
  job's own ``extract`` step (PDF text layer, OCR of images and scanned pages, or the text file
  itself), and the job's owner as resolved at submit time (``gateway.pipelines.llm.principal_json``).

The built-in text types (``summarize``, ``document_analysis``) are the document pipelines of
``gateway/pipelines/registry.py``: their model calls go through the completion service of
:class:`PipelineContext` (Prism's own request path) as the job's owner, one usage record each.

The job's graph is ``[extract] → <pipeline>``, the pipeline running as a subgraph, so both are
checkpointed under the job's thread and a worker that takes a job over resumes after the last
finished step.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from gateway.agent.durable.definitions import DurableGraph
from gateway.config.settings import Settings
from gateway.pipelines.llm import Completions, PipelineLLM
from gateway.providers.registry import Target

OWNER_KEY = "_principal"
"""Where a job's stored options keep its owner (set at submit time; a caller's value is dropped)."""
AUDIO_KEY = "_audio"
"""Where a ``transcription`` job's options keep what submit measured: model, seconds, cost."""

InputKind = Literal["file", "text", "audio"]
"""``audio``: like ``file``, but the upload is checked as audio (``gateway/audio/formats.py``),
measured, and charged to the daily audio-seconds quota at submit (the ``transcription`` type)."""


@dataclass(frozen=True, slots=True)
class PipelineContext:
    targets: Mapping[str, Target]
    model: str
    """The default model for LLM steps (``GATEWAY_JOBS_MODEL``)."""
    settings: Settings
    completions: Completions | None = None
    """Prism's request path in this process (the gateway's own, or one a Celery worker opened)."""

    def llm(self) -> PipelineLLM:
        if self.completions is None:
            raise LookupError("no completion service in this process: the pipeline's model calls cannot run")
        return PipelineLLM(self.completions, model=self.model)

    def target(self, name: str | None = None) -> Target:
        chosen = name or self.model
        if chosen not in self.targets:
            raise LookupError(f"model {chosen!r} is not configured")
        return self.targets[chosen]


@dataclass(frozen=True, slots=True)
class JobType:
    name: str
    pipeline: str
    """``module:factory``."""
    input: InputKind = "text"
    accepts_text: bool = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "accepts_text", self.input == "text")

    def load(self) -> Callable[[PipelineContext], DurableGraph]:
        module_name, _, attribute = self.pipeline.partition(":")
        factory = getattr(importlib.import_module(module_name), attribute)
        if not callable(factory):
            raise TypeError(f"job type {self.name!r}: {self.pipeline} is not callable")
        return factory  # type: ignore[no-any-return]


BUILTIN: dict[str, JobType] = {
    "ocr": JobType("ocr", "gateway.jobs.pipelines:ocr_pipeline", "file"),
    "summarize": JobType("summarize", "gateway.jobs.pipelines:summarize_pipeline", "text"),
    "document_analysis": JobType(
        "document_analysis", "gateway.jobs.pipelines:document_analysis_pipeline", "text"
    ),
    # issue #24: an evaluation run on the queue (``gateway/services/eval_jobs.py``); no file
    "evaluation": JobType("evaluation", "gateway.services.eval_jobs:evaluation_pipeline", "file"),
    "transcription": JobType("transcription", "gateway.jobs.transcription:transcription_pipeline", "audio"),
}


INTERNAL_TYPES = frozenset({"evaluation"})
"""Job types the gateway queues itself (an evaluation run is started by ``POST /api/evaluations``);
``POST /v1/jobs`` refuses them."""


def job_types(settings: Settings) -> dict[str, JobType]:
    """The built-in types with ``GATEWAY_JOBS_TYPES`` merged over them (``null`` removes one)."""
    types = dict(BUILTIN)
    if settings.jobs_types:
        extra: Any = orjson.loads(settings.jobs_types)
        if not isinstance(extra, dict):
            raise ValueError("GATEWAY_JOBS_TYPES must be a JSON object")
        for name, spec in extra.items():
            if spec is None:
                types.pop(name, None)
                continue
            if not isinstance(spec, dict) or not isinstance(spec.get("pipeline"), str):
                raise ValueError(f'GATEWAY_JOBS_TYPES[{name!r}] needs a "pipeline": "module:factory"')
            kind = spec.get("input", "text")
            if kind not in ("file", "text", "audio"):
                raise ValueError(f'GATEWAY_JOBS_TYPES[{name!r}].input must be "file", "text" or "audio"')
            types[name] = JobType(name, spec["pipeline"], kind)
    return types
