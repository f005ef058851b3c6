"""Layouts of the generated letters: each renders the ground truth of scripts/gongmun_templates.py
to text. DEV_LAYOUTS: the layouts the parser was developed on; HELDOUT_LAYOUTS: evaluation only."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

from scripts.gongmun_templates import KO_WEEKDAYS, Renderer, ko_date_variant, ko_dot


def _spaced(text: str) -> str:
    return " ".join(text.replace(" ", ""))


def _weekday(iso: str) -> str:
    return KO_WEEKDAYS[dt.date.fromisoformat(iso).weekday()]


def _ko_body(rng: random.Random, t: dict[str, Any], *, deadline_style: str) -> list[str]:
    related = ko_dot(dt.date.fromisoformat(t["date"]) - dt.timedelta(days=30))
    lines = [
        f"1. 관련: {t['_dept']}-{rng.randrange(10, 999)}({related})",
        f"2. 위 호와 관련하여 {t['_topic']}을(를) 다음과 같이 추진하고자 하오니, "
        f"{t['_action']}하여 주시기 바랍니다.",
    ]
    deadline = t["reply_deadline"]
    if deadline:
        d = dt.date.fromisoformat(deadline)
        shown = ko_date_variant(rng, d)
        if deadline_style == "item":
            lines.append(f"  가. 제출 기한: {shown}({_weekday(deadline)})까지")
        elif deadline_style == "sentence":
            lines.append(f"3. 관련 자료는 {shown}까지 회신하여 주시기 바랍니다.")
        else:
            lines.append(f"  가. 회신 기한: {shown}")
    lines.append("  나. 제출 방법: 공문 및 전자우편 병행")
    return lines


def _ko_attachments(t: dict[str, Any], label: str, indent: str) -> list[str]:
    items = t["attachments"] or []
    if not items:
        return []
    out = []
    for index, item in enumerate(items, start=1):
        prefix = label if index == 1 else indent
        numbered = f"{index}. {item}." if len(items) > 1 else f"{item}."
        out.append(f"{prefix}{numbered}" + ("  끝." if index == len(items) else ""))
    return out


def _ko_signers(rng: random.Random, t: dict[str, Any]) -> str:
    parts = [f"{role} {name}" for role, name in t["_roles"]]
    if rng.random() < 0.4:
        parts[-1] = f"{t['_roles'][-1][0]} 전결 {t['date'][5:7]}/{t['date'][8:10]} {t['_roles'][-1][1]}"
    return "     ".join(parts)


def ko_standard(rng: random.Random, t: dict[str, Any]) -> str:
    date = ko_dot(dt.date.fromisoformat(t["date"]))
    lines = [_spaced(t["sender_org"]) if rng.random() < 0.5 else t["sender_org"], ""]
    lines.append(f"수신  {t['recipient']}")
    lines.append(f"(경유)  {t['via'] or ''}".rstrip())
    lines.append(f"제목  {t['title']}")
    lines.append("")
    body = _ko_body(rng, t, deadline_style="item")
    attachments = _ko_attachments(t, "붙임  ", "      ")
    if not attachments:
        body[-1] += "  끝."
    lines += [*body, "", *attachments, "", _spaced(t["sender_name"]), ""]
    lines.append(_ko_signers(rng, t))
    lines.append("협조자")
    lines.append(f"시행  {t['doc_number']} ({date})          접수")
    lines.append(f"우 {t['_postcode']}  {t['_address']}  / http://www.example.go.kr")
    c = t["contact"]
    lines.append(f"전화번호 {c['phone']}   팩스번호 {c['fax']}  / {c['email']}  / {t['disclosure']}")
    return "\n".join(lines) + "\n"


def ko_colon(rng: random.Random, t: dict[str, Any]) -> str:
    date = ko_date_variant(rng, dt.date.fromisoformat(t["date"]))
    lines = [t["sender_org"], ""]
    lines.append(f"수 신 : {t['recipient']}")
    if t["via"]:
        lines.append(f"(경유) : {t['via']}")
    lines.append(f"제 목 : {t['title']}")
    lines.append("")
    body = _ko_body(rng, t, deadline_style="sentence")
    attachments = _ko_attachments(t, "붙 임 : ", "        ")
    if not attachments:
        body[-1] += "  끝."
    lines += [*body, "", *attachments, "", t["sender_name"], ""]
    lines.append(_ko_signers(rng, t))
    lines.append(f"시행 : {t['doc_number']} ({date})   접수 :")
    lines.append(f"우{t['_postcode']} {t['_address']}")
    c = t["contact"]
    lines.append(f"전화 ({c['phone']})  전송 ({c['fax']})  {c['email']}  {t['disclosure']}")
    return "\n".join(lines) + "\n"


def ko_compact(rng: random.Random, t: dict[str, Any]) -> str:
    date = ko_date_variant(rng, dt.date.fromisoformat(t["date"]))
    lines = [_spaced(t["sender_org"]), ""]
    lines.append(f"수신자  {t['recipient']}")
    if t["via"]:
        lines.append(f"(경유)  {t['via']}")
    lines.append(f"제목  {t['title']}")
    lines.append("")
    body = _ko_body(rng, t, deadline_style="label")
    attachments = _ko_attachments(t, "붙임  ", "      ")
    if not attachments:
        body[-1] += "  끝."
    lines += [*body, "", *attachments, "", _spaced(t["sender_name"]), ""]
    lines.append(_ko_signers(rng, t))
    lines.append(f"시행  {t['doc_number']}({date})")
    lines.append("접수")
    c = t["contact"]
    lines.append(f"우 {t['_postcode']} {t['_address']}")
    lines.append(f"전화 {c['phone']}  /  전송 {c['fax']}  /  {c['email']}")
    lines.append(f"/ {t['disclosure']}")
    return "\n".join(lines) + "\n"


def ko_heldout_table(rng: random.Random, t: dict[str, Any]) -> str:
    """Held-out: a form-like header (문서번호/시행일자 labelled), 경유 inline, attachments on one line."""
    date = ko_date_variant(rng, dt.date.fromisoformat(t["date"]))
    c = t["contact"]
    lines = [f"[{t['sender_org']}]", "", f"문서번호: {t['doc_number']}", f"시행일자: {date}"]
    via = f" (경유: {t['via']})" if t["via"] else ""
    lines += [f"수신: {t['recipient']}{via}", f"제목: {t['title']}", ""]
    lines += _ko_body(rng, t, deadline_style=rng.choice(["item", "sentence", "label"]))
    if t["attachments"]:
        lines.append("붙임: " + ", ".join(f"{i}. {a}" for i, a in enumerate(t["attachments"], 1)) + ".  끝.")
    else:
        lines[-1] += "  끝."
    lines += ["", t["sender_name"], ""]
    lines.append("  ".join(f"{role} {name}" for role, name in t["_roles"]))
    lines.append(f"담당자 연락처: 전화 {c['phone']}, 팩스 {c['fax']}, 전자우편 {c['email']}")
    lines.append(f"{t['_address']} ({t['_postcode']})")
    lines.append(f"공개구분: {t['disclosure']}")
    return "\n".join(lines) + "\n"


def _en_date(rng: random.Random, iso: str) -> str:
    d = dt.date.fromisoformat(iso)
    return rng.choice([f"{d.day} {d:%B} {d.year}", f"{d:%B} {d.day}, {d.year}", f"{d.day} {d:%b} {d.year}"])


def _en_request(rng: random.Random, t: dict[str, Any]) -> str:
    deadline = f" by {_en_date(rng, t['reply_deadline'])}" if t["reply_deadline"] else ""
    return rng.choice(
        [
            f"We would be grateful if you could {t['request_summary']}{deadline}.",
            f"We kindly request that you {t['request_summary']}{deadline}.",
        ]
    )


def en_block(rng: random.Random, t: dict[str, Any]) -> str:
    c = t["contact"]
    lines = [t["sender_org"].upper() if rng.random() < 0.5 else t["sender_org"], t["_address"], ""]
    lines += [f"Ref: {t['doc_number']}", f"Date: {_en_date(rng, t['date'])}", ""]
    lines += [f"To: {t['recipient']}", "", f"Subject: {t['title']}", "", "Dear Sir or Madam,", ""]
    lines.append(f"I am writing to you regarding the {t['title'].lower()}. {_en_request(rng, t)}")
    lines.append("")
    if t["attachments"]:
        lines.append("Attachments:")
        lines += [f"{i}. {a}" for i, a in enumerate(t["attachments"], 1)]
        lines.append("")
    lines.append(
        f"For further information, please contact {c['name']} (Tel: {c['phone']}, Email: {c['email']})."
    )
    lines += ["", "Yours faithfully,", "", t["sender_name"], t["_title"]]
    return "\n".join(lines) + "\n"


def en_memo(rng: random.Random, t: dict[str, Any]) -> str:
    c = t["contact"]
    lines = [t["sender_org"], "", f"OUR REF: {t['doc_number']}", f"DATE: {_en_date(rng, t['date'])}"]
    lines += [f"TO: {t['recipient']}", f"RE: {t['title']}", ""]
    lines.append(f"This letter concerns the {t['title'].lower()}. {_en_request(rng, t)}")
    lines.append("")
    if t["attachments"]:
        lines += ["Enclosures: " + "; ".join(t["attachments"]), ""]
    lines.append(f"Contact: {c['name']}, tel. {c['phone']}, e-mail {c['email']}")
    lines += ["", "Sincerely,", t["sender_name"], f"{t['_title']}, {t['sender_org']}"]
    return "\n".join(lines) + "\n"


def en_heldout_letter(rng: random.Random, t: dict[str, Any]) -> str:
    """Held-out: reference as 'No.', place-and-date line, recipient as an unlabelled address block."""
    c = t["contact"]
    lines = [t["sender_org"], t["_address"], "", f"No. {t['doc_number']}", ""]
    lines += [f"{t['_address'].split(',')[-1].strip()}, {_en_date(rng, t['date'])}", ""]
    lines += [t["recipient"], "", f"SUBJECT: {t['title'].upper()}", "", "Dear Colleague,", ""]
    lines.append(f"Further to our recent correspondence, {_en_request(rng, t)}")
    if t["attachments"]:
        lines += ["", "Encl.: " + ", ".join(t["attachments"])]
    lines += ["", f"Our contact person is {c['name']} ({c['email']}, {c['phone']}).", ""]
    lines += ["Best regards,", "", t["sender_name"], t["_title"]]
    return "\n".join(lines) + "\n"


def ko_blind(rng: random.Random, t: dict[str, Any]) -> str:
    """Held-out, written after the parser was frozen: wide label spacing, a 기안자/검토자/결재권자 line,
    attachments on one line, '공개구분' in the footer."""
    date = ko_date_variant(rng, dt.date.fromisoformat(t["date"]))
    c = t["contact"]
    lines = [
        t["sender_org"],
        "─" * 20,
        f"수     신   {t['recipient']}",
        f"(경 유)     {t['via'] or ''}".rstrip(),
    ]
    lines += [f"제     목   {t['title']}", ""]
    body = _ko_body(rng, t, deadline_style=rng.choice(["item", "sentence", "label"]))
    if t["attachments"]:
        body += ["", "붙임 " + " ".join(f"{i}. {a}" for i, a in enumerate(t["attachments"], 1)) + ".  끝."]
    else:
        body[-1] += "  끝."
    lines += [*body, "", _spaced(t["sender_name"]), ""]
    labels = ["기안자", "검토자", "결재권자"]
    lines.append(
        "  ".join(f"{lab} {role} {name}" for lab, (role, name) in zip(labels, t["_roles"], strict=True))
    )
    lines.append(f"시행 {t['doc_number']}({date})  접수 ( )")
    lines.append(f"우 {t['_postcode']} {t['_address']} / www.example.go.kr")
    lines.append(f"전화 {c['phone']} 전송 {c['fax']} / {c['email']} / 공개구분 {t['disclosure']}")
    return "\n".join(lines) + "\n"


def en_blind(rng: random.Random, t: dict[str, Any]) -> str:
    """Held-out, written after the parser was frozen: 'Our Ref.', 'Attn:', a dash subject, enclosures
    numbered '1)', the contact in a question sentence."""
    c = t["contact"]
    lines = [t["sender_org"], f"Our Ref.: {t['doc_number']}    Your Ref.: -", _en_date(rng, t["date"]), ""]
    lines += [f"Attn: {t['recipient']}", "", f"Subject - {t['title']}", "", "Dear Madam or Sir,", ""]
    deadline = f" no later than {_en_date(rng, t['reply_deadline'])}" if t["reply_deadline"] else ""
    lines.append(f"Kindly {t['request_summary']}{deadline}.")
    if t["attachments"]:
        lines += ["", "Enclosure(s): " + " ".join(f"{i}) {a}" for i, a in enumerate(t["attachments"], 1))]
    lines += [
        "",
        f"Should you have any questions, please contact {c['name']} at {c['email']} or {c['phone']}.",
    ]
    lines += ["", "Yours sincerely,", "(signed)", t["sender_name"], t["_title"]]
    return "\n".join(lines) + "\n"


DEV_LAYOUTS: dict[str, tuple[str, Renderer]] = {
    "ko_standard": ("ko", ko_standard),
    "ko_colon": ("ko", ko_colon),
    "ko_compact": ("ko", ko_compact),
    "en_block": ("en", en_block),
    "en_memo": ("en", en_memo),
}
HELDOUT_LAYOUTS: dict[str, tuple[str, Renderer]] = {
    "ko_heldout_table": ("ko", ko_heldout_table),
    "en_heldout_letter": ("en", en_heldout_letter),
    "ko_blind": ("ko", ko_blind),
    "en_blind": ("en", en_blind),
}
