"""The deterministic parser of a Korean official letter's standard layout (행정업무의 운영 및 혁신에
관한 규정 시행규칙, 별지 서식): 두문 (기관명, 수신, (경유)), 본문 (제목, 내용, 붙임 … 끝.), 결문
(발신명의, 기안자·검토자·결재권자, 시행 처리과명-번호 (일자), 접수, 우편번호 주소, 전화·전송,
공무원 전자우편, 공개 구분). Labels may be letter-spaced (``수 신``) and followed by a colon; the
form-like variants ``문서번호:``/``시행일자:``/``공개구분:`` are read too.

Every value comes with its span in the text; what the layout does not hold (요청사항, a 회신 기한
outside a standard spot) is left to the LLM step."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from gateway.pipelines.gongmun.dates import KO_DATE, find_date, match_iso
from gateway.pipelines.gongmun.fields import FieldValue, found


@dataclass(frozen=True, slots=True)
class Line:
    start: int
    end: int
    text: str

    @property
    def stripped(self) -> str:
        return self.text.strip()

    def value_span(self, offset: int) -> tuple[int, int]:
        """The span of the line's text from ``offset`` (relative), trailing blanks dropped."""
        rest = self.text[offset:]
        lead = len(rest) - len(rest.lstrip())
        return self.start + offset + lead, self.start + len(self.text.rstrip())


def lines_of(text: str) -> list[Line]:
    out, pos = [], 0
    for raw in text.splitlines(keepends=True):
        body = raw.rstrip("\r\n")
        out.append(Line(pos, pos + len(body), body))
        pos += len(raw)
    return out


def _label(*chars: str) -> str:
    return r"\s*".join(chars)


COLON = r"\s*[:：]?\s*"
RECIPIENT = re.compile(rf"^\s*{_label('수', '신')}(?:\s*자)?{COLON}(?=\S)")
VIA = re.compile(r"^\s*\(\s*경\s*유\s*\)" + COLON)
VIA_INLINE = re.compile(r"\(\s*경\s*유\s*[:：]\s*(?P<v>.+?)\)\s*$")
TITLE = re.compile(rf"^\s*{_label('제', '목')}{COLON}(?=\S)")
ATTACH = re.compile(rf"^\s*{_label('붙', '임')}{COLON}")
END_MARK = re.compile(r"\s*끝\s*\.?\s*$")
ENFORCE = re.compile(rf"^\s*{_label('시', '행')}(?!\s*일\s*자){COLON}(?P<num>[^\s(]+)\s*\((?P<date>[^)]*)\)")
DOC_NUMBER = re.compile(rf"^\s*문\s*서\s*번\s*호{COLON}(?P<num>\S+)")
DOC_DATE = re.compile(rf"^\s*시\s*행\s*일\s*자{COLON}")
DISCLOSURE = re.compile(
    r"(대국민\s*공개|부분\s*공개\s*\(\s*[\d,\s]+\)|비\s*공개\s*\(\s*[\d,\s]+\)|비\s*공개|(?<![가-힣])공개(?![가-힣]))"
)
PHONE_NUM = r"\(?0\d{1,2}\)?[-.\s]?\d{3,4}[-.\s]\d{4}"
PHONE = re.compile(rf"(?:전화(?:번호)?|☎|TEL|Tel\.?)\s*[:：]?\s*\(?\s*(?P<v>{PHONE_NUM})")
FAX = re.compile(rf"(?:전송|팩스(?:번호)?|FAX|Fax)\s*[:：]?\s*\(?\s*(?P<v>{PHONE_NUM})")
EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
ROLES = (
    "주무관|행정주사보|행정주사|행정사무관|사무관|서기관|연구사|연구관|장학사|장학관|담당|실무관|"
    "팀장|과장|계장|국장|실장|부장|본부장|원장|차장|처장"
)
HANGUL_OR_LATIN = re.compile(r"[가-힣A-Za-z]")
SIGN_LABEL = re.compile(r"^\s*(?:(?:기안자|검토자|결재권자|협조자|담당자)\s*[:：]?\s*)?$")
SIGNER = re.compile(rf"(?P<role>{ROLES})\s+(?:(?:전결|대결)\s+(?:\d\d/\d\d\s+)?)?(?P<name>[가-힣]{{2,4}})")
DEADLINE_LABEL = re.compile(r"(?:회신|제출|신청|접수)\s*(?:기한|기간|마감)\s*[:：]?\s*")
UNTIL = re.compile(r"\s*(?:\([월화수목금토일]\))?\s*까지")


def _compact_spaced(text: str) -> str:
    """``교 육 부`` → ``교육부``: a letter-spaced heading (every token one syllable) joined."""
    tokens = text.split()
    if len(tokens) > 2 and all(len(t) == 1 for t in tokens):
        return "".join(tokens)
    return text.strip()


def _first(lines: list[Line], pattern: re.Pattern[str]) -> tuple[int, re.Match[str]] | None:
    for index, line in enumerate(lines):
        match = pattern.search(line.text)
        if match:
            return index, match
    return None


def parse_korean(text: str) -> dict[str, FieldValue]:
    lines = lines_of(text)
    fields: dict[str, FieldValue] = {}
    head = _first(lines, RECIPIENT)
    title = _first(lines, TITLE)
    if head:
        index, match = head
        line = lines[index]
        start, end = line.value_span(match.end())
        value = text[start:end]
        inline = VIA_INLINE.search(value)
        if inline:
            fields["via"] = found(
                inline.group("v").strip(), start + inline.start("v"), start + inline.end("v")
            )
            end = start + len(value[: inline.start()].rstrip())
        fields["recipient"] = found(text[start:end], start, end)
    via = _first(lines, VIA)
    if via and "via" not in fields:
        line = lines[via[0]]
        start, end = line.value_span(via[1].end())
        fields["via"] = found(text[start:end], start, end) if end > start else FieldValue(confidence=0.9)
    if title:
        start, end = lines[title[0]].value_span(title[1].end())
        fields["title"] = found(text[start:end], start, end)
    first_label = min((hit[0] for hit in (head, title, _first(lines, DOC_NUMBER)) if hit), default=None)
    if first_label is not None:
        heading = [ln for ln in lines[:first_label] if HANGUL_OR_LATIN.search(ln.text)]  # not a rule ───
        org = heading[-1] if heading else None
        if org is None or DOC_NUMBER.search(org.text) or DOC_DATE.search(org.text):
            org = heading[0] if heading else None
        if org is not None:
            start, end = org.value_span(0)
            raw = text[start:end]
            if raw.startswith("[") and raw.endswith("]"):
                start, end, raw = start + 1, end - 1, raw[1:-1]
            fields["sender_org"] = found(_compact_spaced(raw), start, end, 0.9)
    body_start = title[0] + 1 if title else 0
    fields.update(_attachments(text, lines, body_start))
    fields.update(_closing(text, lines, body_start))
    deadline = _deadline(text, lines, body_start)
    if deadline:
        fields["reply_deadline"] = deadline
    return fields


def _attachments(text: str, lines: list[Line], body_start: int) -> dict[str, FieldValue]:
    hit = _first(lines[body_start:], ATTACH)
    if not hit:
        return {"attachments": FieldValue(confidence=0.8)}
    first = body_start + hit[0]
    start = lines[first].value_span(hit[1].end())[0]
    block: list[Line] = []
    for line in lines[first:]:
        block.append(line)
        if END_MARK.search(line.text) or not line.stripped:
            break
    end = block[-1].start + len(END_MARK.sub("", block[-1].text).rstrip())
    joined = text[start:end]
    items = [item for item in _split_items(joined) if item]
    return {"attachments": found(items, start, end, 0.93)}


def _split_items(block: str) -> Iterator[str]:
    parts = re.split(r"(?:^|\s|,)\s*\d{1,2}\s*\.\s+", " " + block.replace("\n", " "))
    for part in parts:
        item = part.strip().rstrip(",").strip().rstrip(".").strip()
        if item:
            yield item


def _closing(text: str, lines: list[Line], body_start: int) -> dict[str, FieldValue]:
    out: dict[str, FieldValue] = {}
    signer_index = None
    for index in range(body_start, len(lines)):
        match = SIGNER.search(lines[index].text)
        if match and SIGN_LABEL.match(lines[index].text[: match.start()]):
            signer_index = index
            out["_signer"] = found(
                match.group("name"),
                lines[index].start + match.start("name"),
                lines[index].start + match.end("name"),
            )
            break
    if signer_index is not None:
        name_line = next((ln for ln in reversed(lines[body_start:signer_index]) if ln.stripped), None)
        if name_line is not None and not END_MARK.search(name_line.text):
            start, end = name_line.value_span(0)
            out["sender_name"] = found(_compact_spaced(text[start:end]), start, end, 0.9)
    footer = lines[signer_index:] if signer_index is not None else lines[body_start:]
    doc = _first(footer, DOC_NUMBER) or _first(lines, DOC_NUMBER)
    enforce = _first(footer, ENFORCE)
    if enforce:
        line = footer[enforce[0]]
        match = enforce[1]
        out["doc_number"] = found(
            match.group("num"), line.start + match.start("num"), line.start + match.end("num")
        )
        date = KO_DATE.search(line.text, match.start("date"), match.end("date"))
        iso = match_iso(date) if date else None
        if date and iso:
            out["date"] = found(iso, line.start + date.start(), line.start + date.end())
    elif doc:
        line = next(ln for ln in lines if DOC_NUMBER.search(ln.text))
        match = doc[1]
        out["doc_number"] = found(
            match.group("num"), line.start + match.start("num"), line.start + match.end("num")
        )
    if "date" not in out:
        labelled = _first(lines, DOC_DATE)
        if labelled:
            line = lines[labelled[0]]
            hit = find_date(text, line.start + labelled[1].end(), line.end)
            if hit:
                out["date"] = found(hit[0], hit[1], hit[2])
    out.update(_contact(text, footer, out.pop("_signer", None)))
    disclosure = None
    for line in footer:
        for match in DISCLOSURE.finditer(line.text):
            disclosure = (match, line)
    if disclosure:
        match, line = disclosure
        value = re.sub(r"\s+", "", match.group(1)).replace("대국민공개", "대국민 공개")
        out["disclosure"] = found(value, line.start + match.start(1), line.start + match.end(1), 0.93)
    return out


def _contact(text: str, footer: list[Line], signer: FieldValue | None) -> dict[str, FieldValue]:
    value: dict[str, str | None] = {"name": None, "phone": None, "fax": None, "email": None}
    spans: list[tuple[int, int]] = []
    if signer is not None and signer.span is not None:
        value["name"] = signer.value
        spans.append(signer.span)
    for key, pattern in (("phone", PHONE), ("fax", FAX)):
        for line in footer:
            match = pattern.search(line.text)
            if match:
                value[key] = match.group("v")
                spans.append((line.start + match.start("v"), line.start + match.end("v")))
                break
    for line in footer:
        email = EMAIL.search(line.text)
        if email:
            value["email"] = email.group(0)
            spans.append((line.start + email.start(), line.start + email.end()))
            break
    if not spans:
        return {}
    filled = sum(v is not None for v in value.values())
    return {"contact": found(value, min(s for s, _ in spans), max(e for _, e in spans), 0.6 + 0.08 * filled)}


def _deadline(text: str, lines: list[Line], body_start: int) -> FieldValue | None:
    """A date right before ``까지`` or after a 회신/제출 기한 label, in the body."""
    attach = _first(lines[body_start:], ATTACH)
    stop = lines[body_start + attach[0]].start if attach else len(text)
    start = lines[body_start].start if body_start < len(lines) else 0
    for label in DEADLINE_LABEL.finditer(text, start, stop):
        hit = find_date(text, label.end(), min(stop, label.end() + 20))
        if hit and hit[1] == label.end():
            return found(hit[0], hit[1], hit[2], 0.9)
    for match in KO_DATE.finditer(text, start, stop):
        iso = match_iso(match)
        if iso and UNTIL.match(text, match.end()):
            return found(iso, match.start(), match.end(), 0.85)
    return None
