"""Text of a pipeline's input: ``{"text": ...}``, or a PDF with a text layer
(``{"content_base64": ..., "content_type": "application/pdf"}``) read with pypdf. Scanned pages
(no text layer) are the OCR step's (the jobs API runs OCR first and passes its text)."""

from __future__ import annotations

import base64
import binascii
import io
from collections.abc import Mapping
from typing import Any

MAX_PDF_PAGES = 200


class InputError(ValueError):
    """The pipeline's input cannot be read (the run fails with this message)."""


def pdf_text(data: bytes, *, max_pages: int = MAX_PDF_PAGES) -> str:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        if len(reader.pages) > max_pages:
            raise InputError(f"the PDF has {len(reader.pages)} pages; at most {max_pages} are read")
        return "\n".join(page.extract_text() or "" for page in reader.pages)
    except (PdfReadError, ValueError, KeyError) as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(f"the PDF cannot be read: {exc}") from exc


def input_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if not isinstance(value, Mapping):
        raise InputError("the input is an object with 'text' (or a PDF as 'content_base64')")
    if isinstance(value.get("text"), str):
        return str(value["text"])
    content = value.get("content_base64")
    if isinstance(content, str):
        if value.get("content_type", "application/pdf") != "application/pdf":
            raise InputError("only PDFs are read here; images go through OCR first")
        try:
            data = base64.b64decode(content, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InputError("content_base64 is not valid base64") from exc
        if not data.startswith(b"%PDF-"):
            raise InputError("content_base64 is not a PDF")
        text = pdf_text(data)
        if not text.strip():
            raise InputError("the PDF has no text layer (scanned): OCR it first")
        return text
    raise InputError("the input has neither 'text' nor 'content_base64'")
