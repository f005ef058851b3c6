"""The parser of a foreign (English) official letter: letterhead (sending organisation), labelled
lines (``Ref:``/``Our ref:``/``No.``, ``Date:``, ``To:``, ``Subject:``/``Re:``), attachments
(``Attachments:``/``Enclosures:``/``Encl.:``, listed or inline), the contact sentence, the
signatory after the complimentary close, and a deadline (``by``/``no later than`` a date)."""

from __future__ import annotations

import re

from gateway.pipelines.gongmun.dates import ANY_DATE, find_date, match_iso
from gateway.pipelines.gongmun.fields import FieldValue, found
from gateway.pipelines.gongmun.korean import EMAIL, Line, lines_of

REF = re.compile(
    r"^\s*(?:our\s+ref(?:erence)?\.?|ref(?:erence)?\.?(?:\s+no\.?)?|no\.|file\s+no\.?)\s*[:.]?\s*(?=\S)",
    re.I,
)
DATE = re.compile(r"^\s*date\s*[:.]\s*", re.I)
TO = re.compile(r"^\s*(?:to|recipient|addressee|attn\.?|attention)\s*:\s*", re.I)
SUBJECT = re.compile(r"^\s*(?:subject|re|subj\.?)\s*(?::|\s[-–—])\s*", re.I)
ATTACH = re.compile(r"^\s*(?:attachments?|enclosures?|enclosure\(s\)|encl\.?|annex(?:es)?)\s*:\s*", re.I)
INLINE_ITEMS = re.compile(r"(?:^|\s)\d{1,2}[.)]\s+")
SIGNATURE_MARK = re.compile(r"^\s*(?:\(signed\)|/s/|\[signature\]|signed)\s*$", re.I)
CLOSE = re.compile(
    r"^\s*(?:yours\s+(?:faithfully|sincerely|truly)|sincerely(?:\s+yours)?|(?:best|kind)\s+regards|respectfully)\s*,?\s*$",
    re.I,
)
SALUTATION = re.compile(r"^\s*dear\b", re.I)
CONTACT = re.compile(
    r"(?i:please\s+contact|contact(?:\s+person)?(?:\s+is)?\s*:?|our\s+contact\s+person\s+is)\s+(?P<name>(?:(?:Mr|Ms|Mrs|Dr)\.?\s+)?[A-Z][a-z]+(?:\s+[A-Z][a-z]+){1,2})"
)
PHONE = re.compile(r"\+?\d[\d ()-]{7,}\d")
ITEM = re.compile(r"^\s*(?:\d+[.)]|[-•*])\s+\S")
DEADLINE = re.compile(r"\b(?:by|no\s+later\s+than|before|until|deadline\s*:?)\s+", re.I)


def _labelled(text: str, lines: list[Line], pattern: re.Pattern[str], stop: int) -> FieldValue | None:
    for line in lines[:stop]:
        match = pattern.match(line.text)
        if match:
            start, end = line.value_span(match.end())
            gap = re.search(r"\s{3,}", text[start:end])  # another field on the same line
            end = start + gap.start() if gap else end
            if end > start:
                return found(text[start:end], start, end)
    return None


def parse_english(text: str) -> dict[str, FieldValue]:
    lines = lines_of(text)
    fields: dict[str, FieldValue] = {}
    salutation = next((i for i, ln in enumerate(lines) if SALUTATION.match(ln.text)), None)
    head_stop = salutation if salutation is not None else len(lines)
    first = next((ln for ln in lines if ln.stripped), None)
    if first is not None:
        start, end = first.value_span(0)
        org = text[start:end]
        fields["sender_org"] = found(org.title() if org.isupper() else org, start, end, 0.85)
    for name, pattern in (("doc_number", REF), ("recipient", TO), ("title", SUBJECT)):
        value = _labelled(text, lines, pattern, head_stop)
        if value is not None:
            fields[name] = value
    if "title" in fields and isinstance(fields["title"].value, str) and fields["title"].value.isupper():
        fields["title"].value = fields["title"].value.capitalize()
    date_line = next((ln for ln in lines[:head_stop] if DATE.match(ln.text)), None)
    scope = (
        (date_line.start, date_line.end) if date_line else (0, lines[head_stop - 1].end if head_stop else 0)
    )
    hit = find_date(text, *scope)
    if hit:
        fields["date"] = found(hit[0], hit[1], hit[2], 0.95 if date_line else 0.85)
    if "recipient" not in fields and salutation is not None:
        fields.update(_address_block(text, lines, salutation, fields))
    fields.update(_attachments(text, lines))
    fields.update(_closing(text, lines))
    contact = _contact(text)
    if contact:
        fields["contact"] = contact
    deadline = _deadline(text, lines, salutation)
    if deadline:
        fields["reply_deadline"] = deadline
    return fields


def _address_block(
    text: str, lines: list[Line], salutation: int, fields: dict[str, FieldValue]
) -> dict[str, FieldValue]:
    """An unlabelled recipient: the paragraph after the date line and before the subject/salutation."""
    date_end = fields["date"].span[1] if "date" in fields and fields["date"].span else 0
    block = [
        ln
        for ln in lines[:salutation]
        if ln.start > date_end and ln.stripped and not SUBJECT.match(ln.text) and not REF.match(ln.text)
    ]
    if not block:
        return {}
    start, end = block[0].value_span(0)
    return {"recipient": found(text[start:end], start, end, 0.7)}


def _attachments(text: str, lines: list[Line]) -> dict[str, FieldValue]:
    for index, line in enumerate(lines):
        match = ATTACH.match(line.text)
        if not match:
            continue
        start, end = line.value_span(match.end())
        if end > start:  # inline: "Enclosures: A; B" or "Encl.: A, B"
            inline = text[start:end]
            parts = INLINE_ITEMS.split(inline) if INLINE_ITEMS.match(inline) else re.split(r"[;,]", inline)
            items = [i.strip().rstrip(".") for i in parts if i.strip()]
            return {"attachments": found(items, start, end, 0.9)}
        block = []
        for item in lines[index + 1 :]:
            if not ITEM.match(item.text):  # a blank line may be lost (PDF text): items are numbered
                break
            block.append(item)
        if block:
            items = [re.sub(r"^\s*(?:\d+[.)]|[-•*])\s*", "", ln.text).strip().rstrip(".") for ln in block]
            return {"attachments": found(items, block[0].value_span(0)[0], block[-1].end, 0.9)}
    return {"attachments": FieldValue(confidence=0.8)}


def _closing(text: str, lines: list[Line]) -> dict[str, FieldValue]:
    close = next((i for i in range(len(lines) - 1, -1, -1) if CLOSE.match(lines[i].text)), None)
    if close is None:
        return {}
    name = next((ln for ln in lines[close + 1 :] if ln.stripped and not SIGNATURE_MARK.match(ln.text)), None)
    if name is None:
        return {}
    start, end = name.value_span(0)
    return {"sender_name": found(text[start:end], start, end, 0.9)}


def _contact(text: str) -> FieldValue | None:
    match = CONTACT.search(text)
    if not match:
        return None
    window_end = text.find("\n", match.end())
    window_end = len(text) if window_end < 0 else window_end
    value: dict[str, str | None] = {"name": match.group("name"), "phone": None, "fax": None, "email": None}
    end = match.end("name")
    phone = PHONE.search(text, match.end(), window_end)
    if phone:
        value["phone"] = phone.group(0).strip()
        end = max(end, phone.end())
    email = EMAIL.search(text, match.end(), window_end)
    if email:
        value["email"] = email.group(0).rstrip(".")
        end = max(end, email.end())
    return found(value, match.start("name"), end, 0.85)


def _deadline(text: str, lines: list[Line], salutation: int | None) -> FieldValue | None:
    start = lines[salutation].end if salutation is not None else 0
    for cue in DEADLINE.finditer(text, start):
        for pattern in ANY_DATE:
            match = pattern.match(text, cue.end())
            if match:
                iso = match_iso(match)
                if iso:
                    return found(iso, match.start(), match.end(), 0.85)
    return None
