"""Field accuracy of the 공문 parser on the generated letters (scripts/gen_gongmun.py).

    python scripts/eval_gongmun.py --data .eval/gongmun [--scan-limit 20]

Per split (dev, heldout) and source (clean text, text-layer PDF, and — when Tesseract has kor —
OCR of the scanned-looking JPEGs), the share of letters whose parsed field equals the truth
(strings compared without whitespace and case; dates as ISO; lists item by item; the contact when
every part the truth has matches). The parser only (no LLM): ``request_summary`` is reported as the
share of letters with a non-empty value, not scored.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.pipelines.extract import pdf_text
from gateway.pipelines.gongmun.analyze import heuristic_request, parse_letter
from gateway.pipelines.gongmun.fields import FIELDS, KOREAN_ONLY

SCORED = [f for f in FIELDS if f != "request_summary"]


def norm(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, list):
        return [norm(v) for v in value] or None
    return re.sub(r"\s+", "", str(value)).casefold().rstrip(".")


def digits(value: Any) -> str | None:
    return None if value is None else re.sub(r"\D", "", str(value))


def correct(field: str, truth: Any, got: Any) -> bool:
    if field == "contact":
        if truth is None:
            return got is None
        if not isinstance(got, dict):
            return False
        for key, want in truth.items():
            if want is None:
                continue
            if key in ("phone", "fax"):
                if digits(got.get(key)) != digits(want):
                    return False
            elif norm(got.get(key)) != norm(want):
                return False
        return True
    return bool(norm(truth) == norm(got))


def tesseract_langs() -> set[str]:
    if shutil.which("tesseract") is None:
        return set()
    out = subprocess.run(["tesseract", "--list-langs"], capture_output=True, text=True, check=False).stdout
    return {line.strip() for line in out.splitlines()[1:]}


def ocr(path: Path, language: str) -> str:
    langs = "kor+eng" if language == "ko" else "eng"
    return subprocess.run(
        ["tesseract", str(path), "stdout", "-l", langs, "--psm", "6"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def evaluate(folder: Path, source: str, limit: int | None) -> dict[str, Any]:
    rows = [json.loads(line) for line in (folder / "manifest.jsonl").read_text(encoding="utf-8").splitlines()]
    if limit is not None:
        by_layout: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in rows:
            if len(by_layout[row["layout"]]) < limit:
                by_layout[row["layout"]].append(row)
        rows = [row for group in by_layout.values() for row in group]
    hits: dict[str, list[bool]] = defaultdict(list)
    per_layout: dict[str, list[bool]] = defaultdict(list)
    summary_present = []
    misses: list[str] = []
    for row in rows:
        ident, language, truth = row["id"], row["language"], row["truth"]
        if source == "text":
            text = (folder / f"{ident}.txt").read_text(encoding="utf-8")
        elif source == "pdf":
            text = pdf_text((folder / f"{ident}.pdf").read_bytes())
        else:
            text = ocr(folder / f"{ident}.jpg", language)
        _, fields = parse_letter(text)
        for field in SCORED:
            if language != "ko" and field in KOREAN_ONLY:
                continue
            got = fields.get(field)
            ok = correct(field, truth.get(field), None if got is None else got.value)
            hits[field].append(ok)
            per_layout[row["layout"]].append(ok)
            if not ok and len(misses) < 15:
                misses.append(
                    f"{ident} {row['layout']} {field}: want {truth.get(field)!r} got {got and got.value!r}"
                )
        summary_present.append(bool(heuristic_request(text, language).value))
    per_field = {f: round(sum(v) / len(v), 3) for f, v in hits.items()}
    layouts = {layout: round(sum(v) / max(len(v), 1), 3) for layout, v in sorted(per_layout.items())}
    total = [ok for v in hits.values() for ok in v]
    return {
        "letters": len(rows),
        "fields": per_field,
        "overall": round(sum(total) / max(len(total), 1), 3),
        "request_summary_present": round(sum(summary_present) / max(len(summary_present), 1), 3),
        "layouts": layouts,
        "misses": misses,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(".eval/gongmun"))
    parser.add_argument("--scan-limit", type=int, default=4, help="scans per layout (OCR is slow)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    has_kor = {"kor", "eng"} <= tesseract_langs()
    report: dict[str, Any] = {}
    for split in ("dev", "heldout"):
        folder = args.data / split
        sources = ["text", "pdf"] + (["scan"] if has_kor else [])
        for source in sources:
            if source == "pdf" and not any(folder.glob("*.pdf")):
                continue
            result = evaluate(folder, source, args.scan_limit if source == "scan" else None)
            report[f"{split}/{source}"] = result
    if not has_kor:
        report["scan"] = "not measured: tesseract with kor+eng is not installed"
    fields = SCORED
    print("| split/source | letters | " + " | ".join(fields) + " | overall | request_summary present |")
    print("|---" * (len(fields) + 4) + "|")
    for key, result in report.items():
        if not isinstance(result, dict):
            print(f"\n{key}: {result}")
            continue
        cells = [str(result["fields"].get(f, "n/a")) for f in fields]
        print(
            f"| {key} | {result['letters']} | "
            + " | ".join(cells)
            + f" | {result['overall']} | {result['request_summary_present']} |"
        )
    print("\n| split/source | " + " | ".join(["overall by layout"]) + " |\n|---|---|")
    for key, result in report.items():
        if isinstance(result, dict):
            print(f"| {key} | " + ", ".join(f"{k} {v}" for k, v in result["layouts"].items()) + " |")
    for key, result in report.items():
        if isinstance(result, dict) and result["misses"]:
            print(f"\nmisses {key}:")
            for miss in result["misses"]:
                print("  " + miss)
    if args.json:
        args.json.write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
