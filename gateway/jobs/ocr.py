"""OCR, Korean and English: Tesseract (Debian ``tesseract-ocr`` + ``tesseract-ocr-kor``) through
``pytesseract``, chosen over RapidOCR by measured CER (docs/jobs.md, ``make eval-ocr``).

:func:`ocr_image` returns the text of one image plus one block per text line (its box in pixels
and the mean word confidence, 0–100). :func:`pdf_pages` reads a PDF's text layer first and OCRs
only the pages without one (rendered with pypdfium2 at ``dpi``). Everything here is blocking and
CPU-bound: callers run it in a thread.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import pytesseract
from PIL import Image, ImageOps

LANGS = "kor+eng"
TESSERACT_CONFIG = "--oem 1 --psm 4 -c preserve_interword_spaces=1"
"""LSTM engine; one column of lines of varying size (``--psm 3`` drops lines of sparse pages);
keep spaces as printed (without it the Korean model puts one between every syllable)."""
SPACE_GAP = 0.2
"""A gap between two word boxes wider than this share of the line height is a space."""
MIN_TEXT_LAYER_CHARS = 16
"""A PDF page whose text layer has fewer characters than this is OCRed (a scan)."""


@dataclass(frozen=True, slots=True)
class Block:
    text: str
    box: tuple[int, int, int, int]
    """``(left, top, width, height)`` in pixels of the page image (PDF points for a text layer)."""
    confidence: float
    """Mean word confidence 0–100 (100 for a PDF text layer)."""


@dataclass(frozen=True, slots=True)
class Page:
    number: int
    text: str
    source: str
    """``ocr`` or ``text_layer``."""
    blocks: list[Block] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def ocr_image(image: Image.Image, *, langs: str = LANGS, number: int = 1) -> Page:
    """Tesseract over one page image; lines become blocks."""
    image = ImageOps.exif_transpose(image).convert("L")
    data = pytesseract.image_to_data(
        image, lang=langs, config=TESSERACT_CONFIG, output_type=pytesseract.Output.DICT
    )
    lines: dict[tuple[int, int, int], list[int]] = {}
    for index, word in enumerate(data["text"]):
        if str(word).strip() and float(data["conf"][index]) >= 0:
            key = (data["block_num"][index], data["par_num"][index], data["line_num"][index])
            lines.setdefault(key, []).append(index)
    blocks: list[Block] = []
    for indexes in lines.values():
        left = min(data["left"][i] for i in indexes)
        top = min(data["top"][i] for i in indexes)
        right = max(data["left"][i] + data["width"][i] for i in indexes)
        bottom = max(data["top"][i] + data["height"][i] for i in indexes)
        blocks.append(
            Block(
                text=join_words(
                    [(str(data["text"][i]), data["left"][i], data["width"][i]) for i in indexes],
                    line_height=bottom - top,
                ),
                box=(left, top, right - left, bottom - top),
                confidence=round(sum(float(data["conf"][i]) for i in indexes) / len(indexes), 1),
            )
        )
    # The boxes come from image_to_data, whose words the Korean model often cuts into syllables;
    # image_to_string spaces the same lines as printed, so its lines are the blocks' text.
    printed = [
        line.strip()
        for line in pytesseract.image_to_string(image, lang=langs, config=TESSERACT_CONFIG).splitlines()
        if line.strip()
    ]
    if len(printed) == len(blocks):
        blocks = [
            Block(text=t, box=b.box, confidence=b.confidence) for t, b in zip(printed, blocks, strict=True)
        ]
    text = "\n".join(printed) if printed else "\n".join(b.text for b in blocks)
    return Page(number=number, text=text, source="ocr", blocks=blocks)


def join_words(words: list[tuple[str, int, int]], *, line_height: int) -> str:
    """A line's words ``(text, left, width)``, with a space only where the printed gap is one
    (Tesseract's Korean model cuts many words into syllables: their gaps are narrow)."""
    out = ""
    previous_right: int | None = None
    for text, left, width in words:
        if previous_right is not None and left - previous_right > SPACE_GAP * line_height:
            out += " "
        out += text.strip()
        previous_right = left + width
    return out


def image_frames(image: Image.Image) -> Iterator[Image.Image]:
    """Every frame of a (multi-page TIFF) image."""
    for index in range(getattr(image, "n_frames", 1)):
        image.seek(index)
        yield image.copy()


def pdf_pages(data: bytes, *, dpi: int = 300, langs: str = LANGS) -> Iterator[Page]:
    """Each page of a PDF: its text layer when it has one, else OCR of its rendering."""
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(data)
    try:
        for index in range(len(pdf)):
            page = pdf[index]
            textpage = page.get_textpage()
            text = textpage.get_text_range().replace("\r\n", "\n").strip()
            if len(text.replace(" ", "").replace("\n", "")) >= MIN_TEXT_LAYER_CHARS:
                width, height = page.get_size()
                block = Block(text=text, box=(0, 0, int(width), int(height)), confidence=100.0)
                yield Page(number=index + 1, text=text, source="text_layer", blocks=[block])
                continue
            image = page.render(scale=dpi / 72).to_pil()
            yield ocr_image(image, langs=langs, number=index + 1)
    finally:
        pdf.close()
