"""An upload → its text: plain text, Markdown, or a PDF's text layer (``pypdf``).

Errors are the API's: an unsupported type is 415, text that is not UTF-8, contains NUL or has no
text is 400 (``InvalidRequest``). Scanned PDFs (no text layer) are refused with a clear message;
OCR belongs to the jobs issue.
"""

from __future__ import annotations

import io
import unicodedata
from typing import ClassVar

from gateway.errors import GatewayError, InvalidRequest


class UnsupportedMediaType(GatewayError):
    status_code: ClassVar[int] = 415
    error_type: ClassVar[str] = "invalid_request_error"
    default_code: ClassVar[str | None] = "unsupported_media_type"


TEXT_TYPES = frozenset({"text/plain", "text/markdown", "text/x-markdown"})
PDF_TYPE = "application/pdf"
_SUFFIX_TYPES = {".txt": "text/plain", ".md": "text/markdown", ".markdown": "text/markdown", ".pdf": PDF_TYPE}
SUPPORTED = sorted(TEXT_TYPES | {PDF_TYPE})


def media_type(content_type: str | None, filename: str | None) -> str:
    """The upload's media type: its declared type, else (for ``application/octet-stream`` or none)
    the file name's suffix; 415 when neither is one we read."""
    declared = (content_type or "").split(";")[0].strip().lower()
    if declared in TEXT_TYPES or declared == PDF_TYPE:
        return "text/markdown" if declared == "text/x-markdown" else declared
    if declared in ("", "application/octet-stream") and filename:
        for suffix, kind in _SUFFIX_TYPES.items():
            if filename.lower().endswith(suffix):
                return kind
    raise UnsupportedMediaType(
        f"Unsupported document type {declared or 'unknown'!r}; supported: {', '.join(SUPPORTED)}"
    )


def _clean(text: str) -> str:
    if "\x00" in text:
        raise InvalidRequest("The document contains NUL characters", param="file", code="invalid_document")
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n"))
    if not text.strip():
        raise InvalidRequest("The document has no text", param="file", code="empty_document")
    return text


def extract_text(data: bytes, kind: str) -> str:
    if kind == PDF_TYPE:
        return _clean(_pdf_text(data))
    if b"\x00" in data:
        raise InvalidRequest("The document contains NUL bytes", param="file", code="invalid_document")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidRequest("Text documents must be UTF-8", param="file", code="invalid_document") from None
    return _clean(text)


def _pdf_text(data: bytes) -> str:
    from pypdf import PdfReader  # imported on use: most deployments never read a PDF
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        pages = [page.extract_text() or "" for page in reader.pages]
    except (PdfReadError, ValueError, KeyError, TypeError) as exc:
        raise InvalidRequest(
            f"Unreadable PDF: {type(exc).__name__}", param="file", code="invalid_document"
        ) from None
    text = "\n\n".join(p.strip() for p in pages if p.strip())
    if not text:
        raise InvalidRequest(
            "The PDF has no text layer (scanned pages need OCR, not supported yet)",
            param="file",
            code="empty_document",
        )
    return text
