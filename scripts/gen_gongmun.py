"""Generate official letters (공문, Korean and English) with their ground truth.

    python scripts/gen_gongmun.py --out .eval/gongmun --per-layout 20 [--seed 7] [--no-pdf] [--no-scan]

Writes, per split (``dev``: layouts the parser was developed on; ``heldout``: layouts it was not),
``{split}/{id}.txt`` (the text), ``{id}.pdf`` (a text-layer PDF rendered with reportlab and the
Nanum fonts), ``{id}.jpg`` (a scanned-looking image: 200 dpi, skew, noise, JPEG) and
``{split}/manifest.jsonl`` (id, layout, language, truth). Field values and layouts come from
scripts/gongmun_templates.py and scripts/gongmun_layouts.py.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts.gongmun_layouts import DEV_LAYOUTS, HELDOUT_LAYOUTS
from scripts.gongmun_templates import Letter, en_letter, ko_letter

FONT_DIR = Path("/usr/share/fonts/truetype/nanum")
FONTS = {"regular": FONT_DIR / "NanumGothic.ttf", "myeongjo": FONT_DIR / "NanumMyeongjo.ttf"}


def generate(split: str, per_layout: int, seed: int = 7) -> list[Letter]:
    layouts = DEV_LAYOUTS if split == "dev" else HELDOUT_LAYOUTS
    rng = random.Random(f"{seed}:{split}")
    letters = []
    for layout, (language, render) in layouts.items():
        for _ in range(per_layout):
            fields = ko_letter(rng) if language == "ko" else en_letter(rng)
            text = render(rng, fields)
            truth = {k: v for k, v in fields.items() if not k.startswith("_")}
            letters.append(Letter(language=language, layout=layout, truth=truth, text=text))
    return letters


def render_pdf(text: str, path: Path, *, font: str = "regular") -> None:
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont
    from reportlab.pdfgen import canvas

    name = f"Nanum-{font}"
    if name not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(TTFont(name, str(FONTS[font])))
    page = canvas.Canvas(str(path), pagesize=A4)
    height = A4[1]
    y = height - 60
    for line in text.splitlines():
        if y < 50:
            page.showPage()
            y = height - 60
        page.setFont(name, 10)
        page.drawString(50, y, line)
        y -= 16
    page.save()


def render_scan(text: str, path: Path, rng: random.Random) -> None:
    from PIL import Image, ImageDraw, ImageFilter, ImageFont

    dpi = 200
    width, height = int(8.27 * dpi), int(11.69 * dpi)
    image = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(image)
    font = ImageFont.truetype(str(FONTS["regular"]), size=int(10 * dpi / 72))
    y = int(0.8 * dpi)
    for line in text.splitlines():
        draw.text((int(0.7 * dpi), y), line, fill=0, font=font)
        y += int(16 * dpi / 72)
    image = image.rotate(
        rng.uniform(-1.5, 1.5), expand=False, fillcolor=255, resample=Image.Resampling.BICUBIC
    )
    noise = Image.effect_noise(image.size, rng.uniform(12, 25))
    image = Image.blend(image, noise, 0.12).filter(ImageFilter.GaussianBlur(0.6))
    image.save(path, "JPEG", quality=rng.randrange(45, 75))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(".eval/gongmun"))
    parser.add_argument("--per-layout", type=int, default=20)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--no-pdf", action="store_true")
    parser.add_argument("--no-scan", action="store_true")
    args = parser.parse_args()
    for split in ("dev", "heldout"):
        folder = args.out / split
        folder.mkdir(parents=True, exist_ok=True)
        rng = random.Random(f"render:{args.seed}:{split}")
        rows: list[dict[str, Any]] = []
        for index, letter in enumerate(generate(split, args.per_layout, args.seed)):
            ident = f"{split}-{index:04d}"
            (folder / f"{ident}.txt").write_text(letter.text, encoding="utf-8")
            if not args.no_pdf:
                render_pdf(letter.text, folder / f"{ident}.pdf", font=rng.choice(list(FONTS)))
            if not args.no_scan:
                render_scan(letter.text, folder / f"{ident}.jpg", rng)
            rows.append(
                {"id": ident, "layout": letter.layout, "language": letter.language, "truth": letter.truth}
            )
        with (folder / "manifest.jsonl").open("w", encoding="utf-8") as out:
            for row in rows:
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
        print(f"{split}: {len(rows)} letters in {folder}")


if __name__ == "__main__":
    main()
