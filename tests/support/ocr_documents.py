"""Generated OCR ground truth: Korean and English pages rendered with real fonts (Nanum, Noto CJK,
DejaVu) by Pillow at a given resolution, then degraded (noise, skew, JPEG artefacts).

Used by ``scripts/eval_ocr.py`` (``make eval-ocr``) and the jobs tests. The sentences are written
here, not taken from any OCR training set; the layout (lines, font, order) is drawn from a seed.
"""

from __future__ import annotations

import glob
import io
import random
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFilter, ImageFont

KOREAN = [
    "행정안전부는 2026년 정부혁신 추진계획을 다음과 같이 알려드립니다.",
    "관련 부서에서는 붙임 자료를 검토하여 회신하여 주시기 바랍니다.",
    "회신 기한은 2026년 12월 18일까지이며 기한을 지켜 주십시오.",
    "담당자는 디지털정부국 김민수 주무관이며 연락처는 044-205-1234입니다.",
    "본 문서는 공개 대상이며 개인정보는 포함되어 있지 않습니다.",
    "서울특별시 종로구 세종대로 209 정부서울청사 별관 3층 회의실",
    "각 기관은 업무 연속성 계획을 점검하고 결과를 제출하여야 합니다.",
    "예산 집행 실적은 분기별로 취합하여 기획재정부에 보고합니다.",
    "시행일자는 문서번호와 함께 결문에 기재하는 것을 원칙으로 합니다.",
    "교육부와 과학기술정보통신부가 공동으로 주관하는 사업입니다.",
    "민원인의 편의를 위하여 온라인 신청 절차를 간소화하였습니다.",
    "첨부된 서식에 따라 작성하여 전자문서로 제출하여 주십시오.",
]
ENGLISH = [
    "The Ministry of the Interior announces the 2026 government innovation plan.",
    "Departments are kindly requested to review the attached materials and reply.",
    "The deadline for replies is 18 December 2026; please observe it strictly.",
    "Contact: Kim Minsu, Digital Government Bureau, telephone +82 44 205 1234.",
    "This document may be disclosed and contains no personal information.",
    "Meeting room 3F, Government Complex Seoul, 209 Sejong-daero, Jongno-gu.",
    "Each agency shall check its business continuity plan and submit the results.",
    "Budget execution figures are compiled quarterly and reported to the ministry.",
    "Reference number GOV-2026-0417 must appear on every page of the reply.",
    "Applications received after 5:00 p.m. will be processed the next working day.",
    "Quantities: 1,250 units at USD 37.80 each, total USD 47,250.00 (VAT excluded).",
    "Please find enclosed the signed agreement and two copies of the invoice.",
]


def font_paths(language: str) -> list[str]:
    pattern = "/usr/share/fonts/**/*.tt[fc]"
    found = sorted(glob.glob(pattern, recursive=True))
    if language == "ko":
        chosen = [
            f
            for f in found
            if "NanumGothic.ttf" in f or "NanumMyeongjo.ttf" in f or "NotoSansCJK-Regular" in f
        ]
    else:
        chosen = [f for f in found if f.endswith(("DejaVuSans.ttf", "DejaVuSerif.ttf", "NanumGothic.ttf"))]
    if not chosen:
        raise RuntimeError(f"no font for {language}: install fonts-nanum / fonts-noto-cjk / fonts-dejavu")
    return chosen


@dataclass(frozen=True, slots=True)
class Sample:
    language: str
    condition: str
    text: str
    image: Image.Image


def page_text(language: str, seed: int, lines: int = 6) -> str:
    rng = random.Random(seed)
    pool = KOREAN if language == "ko" else ENGLISH
    return "\n".join(rng.sample(pool, lines))


def render(text: str, *, font_path: str, dpi: int = 300, point_size: float = 12.0) -> Image.Image:
    """Black text on a white A4-wide page, one line per line of ``text``."""
    px = int(point_size * dpi / 72)
    font = ImageFont.truetype(font_path, px)
    margin = int(dpi * 0.6)
    width = int(dpi * 8.27)
    lines = text.split("\n")
    height = margin * 2 + int(px * 1.8) * len(lines)
    image = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(image)
    for index, line in enumerate(lines):
        draw.text((margin, margin + index * int(px * 1.8)), line, font=font, fill=0)
    return image


def degrade(image: Image.Image, condition: str, *, seed: int = 0) -> Image.Image:
    """``clean``, ``noise`` (gaussian, σ≈25 grey levels, then slight blur), ``skew`` (1.5°),
    ``jpeg`` (quality 25), or ``scan`` (all three)."""
    rng = random.Random(seed)
    out = image
    if condition in ("skew", "scan"):
        out = out.rotate(
            1.5 if rng.random() < 0.5 else -1.5, expand=True, fillcolor=255, resample=Image.BICUBIC
        )
    if condition in ("noise", "scan"):
        import numpy as np

        array = np.asarray(out, dtype=np.float32)
        noisy = array + np.random.default_rng(seed).normal(0, 25, array.shape)
        out = Image.fromarray(noisy.clip(0, 255).astype("uint8")).filter(ImageFilter.GaussianBlur(0.6))
    if condition in ("jpeg", "scan"):
        buffer = io.BytesIO()
        out.save(buffer, format="JPEG", quality=25)
        out = Image.open(io.BytesIO(buffer.getvalue())).convert("L")
    return out


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def samples(*, languages: tuple[str, ...] = ("ko", "en"), pages: int = 3) -> list[Sample]:
    """Per language: clean renders at 300, 200 and 150 dpi, and degraded 300-dpi renders."""
    out: list[Sample] = []
    for language in languages:
        fonts = font_paths(language)
        for index in range(pages):
            text = page_text(language, seed=index)
            font = fonts[index % len(fonts)]
            for dpi in (300, 200, 150):
                out.append(Sample(language, f"clean-{dpi}dpi", text, render(text, font_path=font, dpi=dpi)))
            base = render(text, font_path=font, dpi=300)
            for condition in ("noise", "skew", "jpeg", "scan"):
                out.append(
                    Sample(language, f"{condition}-300dpi", text, degrade(base, condition, seed=index))
                )
    return out


def normalise(text: str) -> str:
    return " ".join(text.split())


def cer(reference: str, hypothesis: str) -> float:
    """Character error rate: Levenshtein distance over the reference length, whitespace collapsed."""
    ref, hyp = normalise(reference), normalise(hypothesis)
    previous = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        current = [i]
        for j, h in enumerate(hyp, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (r != h)))
        previous = current
    return previous[-1] / max(1, len(ref))
