"""OCR character error rate per language and condition on generated pages (``make eval-ocr``).

Pages: ``tests/support/ocr_documents.py`` (Korean and English sentences rendered with Nanum,
Noto CJK and DejaVu fonts at 300/200/150 dpi; noise, 1.5° skew, JPEG q25, and all three).
CER is the Levenshtein distance over the reference length with whitespace collapsed;
``cer_nospace`` ignores spacing (Korean word spacing is where Tesseract errs most).

    python scripts/eval_ocr.py [--engine tesseract|rapidocr] [--langs kor+eng] [--pages 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict
from typing import Any

from tests.support.ocr_documents import cer, samples


def rapidocr_text(engine: Any, image: Any) -> str:
    import numpy as np

    result, _ = engine(np.asarray(image.convert("RGB")))
    return "\n".join(line[1] for line in result or [])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=["tesseract", "rapidocr"], default="tesseract")
    parser.add_argument("--langs", default="kor+eng")
    parser.add_argument("--pages", type=int, default=3)
    args = parser.parse_args()
    rapid: Any = None
    if args.engine == "rapidocr":
        from rapidocr_onnxruntime import RapidOCR

        rapid = RapidOCR()
    scores: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    started = time.perf_counter()
    for sample in samples(pages=args.pages):
        if rapid is not None:
            text = rapidocr_text(rapid, sample.image)
        else:
            from gateway.jobs.ocr import ocr_image

            text = ocr_image(sample.image, langs=args.langs).text
        nospace = cer(sample.text.replace(" ", ""), text.replace(" ", ""))
        scores[(sample.language, sample.condition)].append((cer(sample.text, text), nospace))
    print(
        f"engine={args.engine} langs={args.langs} pages/condition={args.pages} "
        f"seconds={time.perf_counter() - started:.0f}"
    )
    print("| language | condition | CER | CER ignoring spaces |")
    print("| --- | --- | ---: | ---: |")
    for (language, condition), values in sorted(scores.items()):
        mean = statistics.mean(v[0] for v in values)
        mean_nospace = statistics.mean(v[1] for v in values)
        print(f"| {language} | {condition} | {mean:.2%} | {mean_nospace:.2%} |")


if __name__ == "__main__":
    main()
