"""``summarize``: the first registered durable pipeline — map-reduce summary of a long text.

``chunk`` (pure: paragraphs packed into chunks of at most ``chunk_chars``) → ``map`` (one model
call per chunk, progress streamed as custom events) → ``reduce`` (one model call over the partial
summaries; skipped work when there was one chunk). Any configured model answers through Prism's
provider layer, bypassing the gateway's request path (no usage records, quotas or guards).

Kept only for ``gateway/jobs/pipelines.py`` until the jobs registry hands its pipelines a
completion service: the upgraded ``summarize`` (Korean-aware chunking, calls through
``CompletionService.run`` as the job's owner) is ``gateway/pipelines/summarize.py``
(docs/pipelines.md).
"""

from __future__ import annotations

from typing import Any

from gateway.agent.durable.definitions import DurableGraph
from gateway.agent.durable.pipeline import Step, StepContext, build_pipeline
from gateway.providers.base import ModelCall
from gateway.providers.registry import Target

MAP_PROMPT = "Summarise this part of a document in a few sentences, in its own language:\n\n{text}"
REDUCE_PROMPT = "Combine these partial summaries into one short summary, in their language:\n\n{text}"


def chunk_text(text: str, *, chunk_chars: int) -> list[str]:
    """Paragraphs packed greedily into chunks of at most ``chunk_chars`` (a longer paragraph is cut)."""
    chunks: list[str] = []
    current = ""
    for paragraph in (p.strip() for p in text.split("\n\n")):
        while len(paragraph) > chunk_chars:
            if current:
                chunks.append(current)
                current = ""
            chunks.append(paragraph[:chunk_chars])
            paragraph = paragraph[chunk_chars:]
        if not paragraph:
            continue
        if current and len(current) + 2 + len(paragraph) > chunk_chars:
            chunks.append(current)
            current = paragraph
        else:
            current = f"{current}\n\n{paragraph}" if current else paragraph
    if current:
        chunks.append(current)
    return chunks


def summarize_pipeline(target: Target, *, chunk_chars: int = 4000, name: str = "summarize") -> DurableGraph:
    async def ask(prompt: str) -> str:
        completion = await target.provider.complete(
            ModelCall(model=target.upstream_model, messages=[{"role": "user", "content": prompt}])
        )
        return (completion.choices[0].content or "") if completion.choices else ""

    async def chunk(value: Any, step: StepContext) -> list[str]:
        text = value["text"] if isinstance(value, dict) else str(value)
        return chunk_text(text, chunk_chars=chunk_chars)

    async def map_chunks(chunks: list[str], step: StepContext) -> list[str]:
        partial: list[str] = []
        for index, part in enumerate(chunks):
            partial.append(await ask(MAP_PROMPT.format(text=part)))
            step.emit({"done": index + 1, "of": len(chunks)})
        return partial

    async def reduce(partial: list[str], step: StepContext) -> str:
        if len(partial) <= 1:
            return partial[0] if partial else ""
        return await ask(REDUCE_PROMPT.format(text="\n\n".join(partial)))

    return build_pipeline(
        name, [Step("chunk", chunk, retry=None), Step("map", map_chunks), Step("reduce", reduce)]
    )
