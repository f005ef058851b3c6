"""The built-in job pipelines: ``ocr`` (a file → text with per-line boxes and confidences),
``summarize`` and ``document_analysis`` (the document pipelines of ``gateway/pipelines/``, their
model calls through Prism's request path as the job's owner), plus the ``extract`` step that turns
any uploaded file into text for the text pipelines (OCR of images and scanned pages included)."""

from __future__ import annotations

import asyncio
import contextvars
from pathlib import Path
from typing import Any

from PIL import Image

from gateway.agent.durable.definitions import DurableGraph
from gateway.agent.durable.pipeline import Step, StepContext, build_pipeline
from gateway.jobs import ocr
from gateway.jobs.registry import PipelineContext
from gateway.jobs.uploads import TEXT
from gateway.pipelines.registry import PIPELINES

LANGUAGES = {"ko": "kor", "en": "eng", "kor": "kor", "eng": "eng"}


def tesseract_langs(options: dict[str, Any]) -> str:
    """``options.languages`` (``["ko", "en"]`` or ``"kor+eng"``) as Tesseract's ``-l`` value."""
    wanted = options.get("languages") or ["ko", "en"]
    names = wanted.split("+") if isinstance(wanted, str) else list(wanted)
    chosen = [LANGUAGES[name] for name in names if name in LANGUAGES]
    return "+".join(dict.fromkeys(chosen)) or ocr.LANGS


def read_pages(value: dict[str, Any], step: StepContext, dpi: int) -> list[dict[str, Any]]:
    """Every page of the file as ``Page`` dicts, reporting each page as it is done (blocking)."""
    path = Path(value["path"])
    kind = value["content_type"]
    langs = tesseract_langs(value.get("options") or {})
    total = int(value.get("pages") or 0)
    pages: list[dict[str, Any]] = []
    if kind == TEXT:
        text = path.read_text(encoding="utf-8")
        return [ocr.Page(number=1, text=text, source="text").as_dict()]
    if kind == "application/pdf":
        iterator = ocr.pdf_pages(path.read_bytes(), dpi=dpi, langs=langs)
    else:
        image = Image.open(path)
        iterator = (
            ocr.ocr_image(frame, langs=langs, number=i + 1) for i, frame in enumerate(ocr.image_frames(image))
        )
    for page in iterator:
        pages.append(page.as_dict())
        step.emit({"done": len(pages), "of": total or len(pages), "unit": "pages"})
    return pages


def ocr_result(pages: list[dict[str, Any]]) -> dict[str, Any]:
    return {"text": "\n\n".join(page["text"] for page in pages), "pages": pages}


def ocr_pipeline(context: PipelineContext) -> DurableGraph:
    dpi = context.settings.jobs_ocr_dpi

    async def recognise(value: dict[str, Any], step: StepContext) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        pages = await loop.run_in_executor(None, _with_writer(read_pages, step), value, step, dpi)
        return ocr_result(pages)

    return build_pipeline("ocr", [Step("ocr", recognise)])


def _with_writer(fn: Any, step: StepContext) -> Any:
    """Run ``fn`` in a thread but emit progress through the node's stream writer, captured here
    (LangGraph's writer lives in a context variable the executor thread does not inherit)."""
    from langgraph.config import get_stream_writer

    writer = get_stream_writer()
    loop = asyncio.get_running_loop()
    context = contextvars.copy_context()  # the writer reads the node's config from it

    class ThreadStep:
        def emit(self, data: dict[str, Any]) -> None:
            loop.call_soon_threadsafe(writer, {"step": step.step, **data}, context=context)

    def call(value: Any, _step: StepContext, *args: Any) -> Any:
        return fn(value, ThreadStep(), *args)

    return call


def extract_step(dpi: int) -> Step:
    async def extract(value: dict[str, Any], step: StepContext) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        pages = await loop.run_in_executor(None, _with_writer(read_pages, step), value, step, dpi)
        return {
            "text": ocr_result(pages)["text"],
            "options": value.get("options") or {},
            "pages": len(pages),
            "principal": value.get("principal"),
        }

    return Step("extract", extract)


def summarize_pipeline(context: PipelineContext) -> DurableGraph:
    return PIPELINES["summarize"](context.llm())


def document_analysis_pipeline(context: PipelineContext) -> DurableGraph:
    return PIPELINES["document_analysis"](context.llm())
