"""``summarize``: a short summary of a document of any length, Korean or English.

``prepare`` (the text — given, or a PDF's text layer — cut into chunks, :mod:`chunking`) → ``map``
(one model call per chunk; a progress event per chunk) → ``reduce`` (the partial summaries combined,
in rounds while they exceed one chunk; a single chunk's summary is the answer). Every call goes
through Prism's request path (:class:`PipelineLLM`) as the job's owner.

Input: ``{"text": ..., "options": {"model", "max_words", "chunk_chars"}, "principal": {...},
"job_id": ...}``. Output (the ``reduce`` step's, the run's ``last``): ``{"summary", "language",
"chunks", "calls", "usage", "model"}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.agent.durable.definitions import DurableGraph
from gateway.agent.durable.pipeline import Step, StepContext, build_pipeline
from gateway.pipelines.chunking import chunk_text, default_chunk_chars
from gateway.pipelines.extract import input_text
from gateway.pipelines.gongmun.fields import detect_language
from gateway.pipelines.llm import Answer, PipelineLLM, principal_from

MAP_PROMPT = {
    "ko": "다음은 긴 문서의 일부({index}/{total})입니다. "
    "핵심 내용을 한국어로 {words}단어 이내로 요약하세요.\n\n{text}",
    "en": "This is part {index} of {total} of a longer document. Summarise its key points in at most "
    "{words} words, in English.\n\n{text}",
}
REDUCE_PROMPT = {
    "ko": "다음은 한 문서의 부분 요약들입니다. "
    "하나의 짧은 요약(한국어, {words}단어 이내)으로 합치세요.\n\n{text}",
    "en": "These are partial summaries of one document. Combine them into one short summary in English "
    "(at most {words} words).\n\n{text}",
}
SINGLE_PROMPT = {
    "ko": "다음 문서를 한국어로 {words}단어 이내로 짧게 요약하세요.\n\n{text}",
    "en": "Summarise this document in English in at most {words} words.\n\n{text}",
}


def _options(value: Mapping[str, Any]) -> dict[str, Any]:
    options = value.get("options") or {}
    return dict(options) if isinstance(options, Mapping) else {}


def summarize_graph(llm: PipelineLLM, *, name: str = "summarize") -> DurableGraph:
    async def ask(prompt: str, carry: Mapping[str, Any], step: StepContext, tally: dict[str, Any]) -> str:
        options = carry["options"]
        answer: Answer = await llm.ask(
            [{"role": "user", "content": prompt}],
            principal=principal_from(carry.get("principal")),
            model=options.get("model"),
            max_tokens=int(options.get("max_tokens", 512)),
            metadata={"prism_run": step.run.run_id, "prism_step": step.step, "prism_pipeline": name},
        )
        tally["calls"] = tally.get("calls", 0) + 1
        for key, count in answer.usage.items():
            tally.setdefault("usage", {})[key] = tally.get("usage", {}).get(key, 0) + count
        tally["model"] = answer.model
        return answer.text.strip()

    async def prepare(value: Any, step: StepContext) -> dict[str, Any]:
        text = input_text(value)
        data = value if isinstance(value, Mapping) else {}
        options = _options(data)
        language = options.get("language") or detect_language(text)
        max_chars = int(options.get("chunk_chars") or default_chunk_chars(text))
        chunks = chunk_text(text, max_chars=max_chars)
        step.emit({"chunks": len(chunks), "chars": len(text), "language": language})
        return {
            "chunks": chunks,
            "language": "ko" if language == "ko" else "en",
            "options": options,
            "principal": data.get("principal"),
            "max_chars": max_chars,
        }

    async def map_chunks(carry: dict[str, Any], step: StepContext) -> dict[str, Any]:
        chunks: list[str] = carry["chunks"]
        lang = carry["language"]
        words = int(carry["options"].get("max_words", 80))
        tally: dict[str, Any] = {"calls": 0, "usage": {}}
        partial: list[str] = []
        for index, part in enumerate(chunks, start=1):
            template = SINGLE_PROMPT[lang] if len(chunks) == 1 else MAP_PROMPT[lang]
            prompt = template.format(index=index, total=len(chunks), words=words, text=part)
            partial.append(await ask(prompt, carry, step, tally))
            step.emit({"done": index, "of": len(chunks)})
        return {
            **{k: v for k, v in carry.items() if k != "chunks"},
            "n_chunks": len(chunks),
            "partial": partial,
            "tally": tally,
        }

    async def reduce(carry: dict[str, Any], step: StepContext) -> dict[str, Any]:
        lang = carry["language"]
        words = int(carry["options"].get("max_words", 80))
        tally: dict[str, Any] = dict(carry["tally"])
        partial: list[str] = carry["partial"]
        rounds = 0
        while len(partial) > 1:
            rounds += 1
            groups = chunk_text("\n\n".join(partial), max_chars=carry["max_chars"])
            if len(groups) >= len(partial):  # each partial alone fills a chunk: pair them up
                groups = ["\n\n".join(partial[i : i + 2]) for i in range(0, len(partial), 2)]
            partial = [
                await ask(REDUCE_PROMPT[lang].format(words=words, text=group), carry, step, tally)
                for group in groups
            ]
            step.emit({"round": rounds, "partials": len(partial)})
        return {
            "summary": partial[0] if partial else "",
            "language": lang,
            "chunks": carry["n_chunks"],
            "reduce_rounds": rounds,
            "calls": tally.get("calls", 0),
            "usage": tally.get("usage", {}),
            "model": tally.get("model"),
        }

    return build_pipeline(
        name, [Step("prepare", prepare, retry=None), Step("map", map_chunks), Step("reduce", reduce)]
    )
