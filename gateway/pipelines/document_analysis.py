"""``document_analysis``: 공문 (official letter) analysis as a durable pipeline.

``extract`` (the text: given — the OCR step's for images and scans — or a PDF's text layer) →
``parse`` (the deterministic parser of the standard layout, :mod:`gongmun.korean` /
:mod:`gongmun.english`) → ``llm`` (the free-text fields through Prism's request path as the job's
owner, JSON-schema output, ``options.model``; the result validated against
``gateway/pipelines/schemas/gongmun.schema.json``). Each step emits a progress event.

Input: ``{"text": ... | "content_base64": ..., "options": {"model", "use_llm", "max_tokens"},
"principal": {...}}``. Output (the run's ``last``): the analysis document.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.agent.durable.definitions import DurableGraph
from gateway.agent.durable.pipeline import Step, StepContext, build_pipeline
from gateway.pipelines.extract import input_text
from gateway.pipelines.gongmun.analyze import finish, llm_fields, parse_letter
from gateway.pipelines.gongmun.fields import from_state, to_state
from gateway.pipelines.llm import PipelineLLM, principal_from


def document_analysis_graph(llm: PipelineLLM | None, *, name: str = "document_analysis") -> DurableGraph:
    async def extract(value: Any, step: StepContext) -> dict[str, Any]:
        text = input_text(value)
        data = value if isinstance(value, Mapping) else {}
        options = data.get("options") if isinstance(data.get("options"), Mapping) else {}
        step.emit({"chars": len(text)})
        return {"text": text, "options": dict(options or {}), "principal": data.get("principal")}

    async def parse(carry: dict[str, Any], step: StepContext) -> dict[str, Any]:
        language, fields = parse_letter(carry["text"])
        step.emit({"language": language, "fields_found": sorted(k for k, f in fields.items() if f.value)})
        return {**carry, "language": language, "fields": to_state(fields)}

    async def ask_llm(carry: dict[str, Any], step: StepContext) -> dict[str, Any]:
        fields = from_state(carry["fields"])
        warnings, model = await llm_fields(
            carry["text"],
            carry["language"],
            fields,
            llm=llm,
            principal=principal_from(carry.get("principal")),
            options=carry["options"],
            metadata={"prism_run": step.run.run_id, "prism_step": step.step, "prism_pipeline": name},
        )
        step.emit({"model": model, "warnings": len(warnings)})
        return finish(carry["text"], carry["language"], fields, warnings, model)

    return build_pipeline(
        name,
        [Step("extract", extract, retry=None), Step("parse", parse, retry=None), Step("llm", ask_llm)],
    )
