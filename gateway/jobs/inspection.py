"""Decode an uploaded file once, whole, before it is queued (blocking: run it in a thread).

A file that does not decode to the end (a truncated PNG, JPEG or TIFF, a PDF cut before its
``%%EOF`` or that PDFium cannot open) is 400; more pages than ``max_pages`` or more pixels than
``max_pixels`` is 413. Returns the number of pages (the quota's unit; text: one per 3,000 chars).
"""

from __future__ import annotations

import math
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from gateway.errors import InvalidRequest, PayloadTooLarge
from gateway.jobs.uploads import TEXT

TEXT_PAGE_CHARS = 3000


def count_pages(path: Path, kind: str, *, max_pages: int, max_pixels: int) -> int:
    if kind == "application/pdf":
        return _pdf_pages(path, max_pages=max_pages)
    if kind == TEXT:
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidRequest(
                "The text file is not valid UTF-8", param="file", code="invalid_file"
            ) from exc
        pages = max(1, math.ceil(len(text) / TEXT_PAGE_CHARS))
    else:
        pages = _image_pages(path, max_pixels=max_pixels, max_pages=max_pages)
    if pages > max_pages:
        raise PayloadTooLarge(
            f"The file has {pages} pages; the limit is {max_pages}", param="file", code="too_many_pages"
        )
    return pages


def _image_pages(path: Path, *, max_pixels: int, max_pages: int) -> int:
    try:
        with Image.open(path) as image:
            frames = getattr(image, "n_frames", 1)
            if frames > max_pages:
                raise PayloadTooLarge(
                    f"The image has {frames} pages; the limit is {max_pages}",
                    param="file",
                    code="too_many_pages",
                )
            for index in range(frames):
                image.seek(index)
                width, height = image.size
                if width * height > max_pixels:
                    raise PayloadTooLarge(
                        f"The image is {width}x{height} pixels; the limit is {max_pixels} pixels",
                        param="file",
                        code="image_too_large",
                    )
                image.load()
            return int(frames)
    except Image.DecompressionBombError as exc:
        raise PayloadTooLarge("The image has too many pixels", param="file", code="image_too_large") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise InvalidRequest(
            f"The image cannot be decoded (truncated or corrupt): {exc}", param="file", code="invalid_file"
        ) from exc


def _pdf_pages(path: Path, *, max_pages: int) -> int:
    import pypdfium2 as pdfium

    with open(path, "rb") as f:
        f.seek(max(0, path.stat().st_size - 2048))
        tail = f.read()
    if b"%%EOF" not in tail:
        raise InvalidRequest("The PDF is truncated (no %%EOF at its end)", param="file", code="invalid_file")
    try:
        pdf = pdfium.PdfDocument(str(path))
    except pdfium.PdfiumError as exc:
        raise InvalidRequest(f"The PDF cannot be opened: {exc}", param="file", code="invalid_file") from exc
    try:
        pages = len(pdf)
    finally:
        pdf.close()
    if pages == 0:
        raise InvalidRequest("The PDF has no pages", param="file", code="invalid_file")
    if pages > max_pages:
        raise PayloadTooLarge(
            f"The PDF has {pages} pages; the limit is {max_pages}", param="file", code="too_many_pages"
        )
    return pages
