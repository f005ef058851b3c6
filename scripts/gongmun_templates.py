"""Templates and field values of the generated official letters (scripts/gen_gongmun.py).

Each layout renders a :class:`Letter` (the ground truth) to plain text. ``DEV_LAYOUTS`` are the
layouts the parser was developed on; ``HELDOUT_LAYOUTS`` were written afterwards and are only
evaluated (the ``heldout`` split)."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

KO_ORGS = [
    ("교육부", "교육부장관", "학교정책과", "세종특별자치시 갈매로 408", "30119"),
    ("행정안전부", "행정안전부장관", "디지털정부정책과", "세종특별자치시 도움6로 42", "30128"),
    ("서울특별시", "서울특별시장", "정보통신보안담당관", "서울특별시 중구 세종대로 110", "04524"),
    ("부산광역시교육청", "부산광역시교육감", "교육정책과", "부산광역시 부산진구 화지로 12", "47217"),
    ("국토교통부", "국토교통부장관", "주택정책과", "세종특별자치시 도움6로 11", "30103"),
    ("한국산업인력공단", "한국산업인력공단 이사장", "능력평가국", "울산광역시 중구 종가로 345", "44538"),
    ("경기도", "경기도지사", "데이터정책과", "경기도 수원시 영통구 도청로 30", "16508"),
    (
        "식품의약품안전처",
        "식품의약품안전처장",
        "식품안전정책과",
        "충청북도 청주시 흥덕구 오송읍 오송생명2로 187",
        "28159",
    ),
]
KO_RECIPIENTS = [
    "수신자 참조",
    "각 시·도교육청 교육감(학교정책과장)",
    "서울특별시장(정보화담당관)",
    "전국 지방자치단체장",
    "한국교육학술정보원장(디지털교육본부장)",
    "각 중앙행정기관의 장(기획조정실장)",
    "내부결재",
    "대한상공회의소 회장",
]
KO_VIA = ["", "", "", "○○교육지원청 교육장", "경기도지사(자치행정과장)"]
KO_TOPICS = [
    ("2026년 디지털 역량 강화 사업 추진 계획", "사업 참여 희망 기관 명단을 제출"),
    ("개인정보 보호 실태 점검 결과", "미흡 사항에 대한 개선 계획을 회신"),
    ("공공데이터 개방 수요 조사", "수요 조사서를 작성하여 제출"),
    ("하반기 안전 점검 실시", "소관 시설의 점검 결과를 보고"),
    ("정보보안 교육 참석자 추천", "교육 참석 대상자를 추천"),
    ("민원 처리 지침 개정 의견 조회", "개정안에 대한 의견을 제출"),
    ("청렴도 향상 우수 사례 공모", "우수 사례를 발굴하여 제출"),
]
KO_SUFFIX = ["협조 요청", "알림", "안내 및 제출 요청", "의견 조회"]
KO_ATTACH = [
    "추진 계획서",
    "제출 서식",
    "점검 결과 보고서",
    "수요 조사서",
    "참석자 명단 양식",
    "개정안 전문",
    "공모 요강",
]
KO_DISCLOSURE = ["대국민 공개", "공개", "부분공개(5)", "비공개(6)", "부분공개(1,6)"]
KO_SURNAMES = "김이박최정강조윤장임한오서신권황안송류홍"
KO_GIVEN = ["민준", "서연", "지훈", "하은", "도윤", "수빈", "예준", "지민", "현우", "은서", "길동", "영희"]
KO_ROLES = [("주무관", "사무관", "과장"), ("행정주사", "팀장", "국장"), ("연구사", "장학관", "과장")]
KO_WEEKDAYS = "월화수목금토일"

EN_ORGS = [
    ("Embassy of the Republic of Korea in the United Kingdom", "60 Buckingham Gate, London SW1E 6AJ"),
    ("Ministry of Foreign Affairs of Japan", "2-2-1 Kasumigaseki, Chiyoda-ku, Tokyo"),
    ("Department for Education", "Sanctuary Buildings, Great Smith Street, London SW1P 3BT"),
    ("World Health Organization Regional Office", "Avenue Appia 20, 1211 Geneva"),
    ("Office of the Mayor of Springfield", "100 Main Street, Springfield, IL 62701"),
    ("National Archives of Australia", "Queen Victoria Terrace, Parkes ACT 2600"),
]
EN_RECIPIENTS = [
    "Ministry of the Interior and Safety, Republic of Korea",
    "Director-General, International Cooperation Bureau",
    "Seoul Metropolitan Government, International Relations Division",
    "The Head of Procurement, Korea Customs Service",
    "Ms. Jane Park, Korea Education and Research Information Service",
]
EN_TOPICS = [
    (
        "Joint workshop on digital government",
        "confirm your delegation's participation and send the list of participants",
    ),
    ("Data sharing agreement renewal", "review the attached draft agreement and return your comments"),
    ("Survey on public records management", "complete the enclosed questionnaire"),
    ("Invitation to the annual policy forum", "nominate a speaker for the panel session"),
    ("Request for statistical information", "provide the requested statistics for 2025"),
]
EN_ATTACH = [
    "Draft agenda",
    "Participant registration form",
    "Draft agreement",
    "Questionnaire",
    "Concept note",
]
EN_FIRST = ["John", "Emily", "Hiroshi", "Sarah", "David", "Olivia", "Michael", "Aiko", "Thomas"]
EN_LAST = ["Smith", "Brown", "Tanaka", "Wilson", "Taylor", "Clarke", "Nguyen", "Sato", "Evans"]
EN_TITLES = ["Director", "First Secretary", "Head of International Affairs", "Deputy Director-General"]


@dataclass(slots=True)
class Letter:
    language: str
    layout: str
    truth: dict[str, Any]
    text: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _date(rng: random.Random) -> dt.date:
    return dt.date(2026, 1, 1) + dt.timedelta(days=rng.randrange(0, 330))


def ko_dot(d: dt.date, pad: bool = False) -> str:
    return f"{d.year}. {d.month:02d}. {d.day:02d}." if pad else f"{d.year}. {d.month}. {d.day}."


def ko_date_variant(rng: random.Random, d: dt.date) -> str:
    return rng.choice([ko_dot(d), ko_dot(d, pad=True), f"{d.year}.{d.month:02d}.{d.day:02d}.", d.isoformat()])


def ko_letter(rng: random.Random) -> dict[str, Any]:
    org, head, dept, address, postcode = rng.choice(KO_ORGS)
    topic, action = rng.choice(KO_TOPICS)
    date = _date(rng)
    deadline = date + dt.timedelta(days=rng.randrange(7, 40)) if rng.random() < 0.8 else None
    attachments = [f"{name} 1부" for name in rng.sample(KO_ATTACH, rng.randrange(0, 4))]
    roles = rng.choice(KO_ROLES)
    people = [rng.choice(KO_SURNAMES) + rng.choice(KO_GIVEN) for _ in roles]
    area = rng.choice(["02", "044", "051", "031", "043"])
    phone = f"{area}-{rng.randrange(200, 999)}-{rng.randrange(1000, 9999)}"
    fax = f"{area}-{rng.randrange(200, 999)}-{rng.randrange(1000, 9999)}"
    email = f"user{rng.randrange(10, 999)}@korea.kr"
    return {
        "recipient": rng.choice(KO_RECIPIENTS),
        "via": rng.choice(KO_VIA) or None,
        "title": f"{topic} {rng.choice(KO_SUFFIX)}",
        "doc_number": f"{dept}-{rng.randrange(100, 99999)}",
        "date": date.isoformat(),
        "sender_org": org,
        "sender_name": head,
        "contact": {"name": people[0], "phone": phone, "fax": fax, "email": email},
        "attachments": attachments or None,
        "disclosure": rng.choice(KO_DISCLOSURE),
        "request_summary": f"{topic} 관련 {action}",
        "reply_deadline": deadline.isoformat() if deadline else None,
        "_roles": list(zip(roles, people, strict=True)),
        "_address": address,
        "_postcode": postcode,
        "_topic": topic,
        "_action": action,
        "_dept": dept,
    }


def en_letter(rng: random.Random) -> dict[str, Any]:
    org, address = rng.choice(EN_ORGS)
    topic, action = rng.choice(EN_TOPICS)
    date = _date(rng)
    deadline = date + dt.timedelta(days=rng.randrange(7, 40)) if rng.random() < 0.8 else None
    name = f"{rng.choice(EN_FIRST)} {rng.choice(EN_LAST)}"
    contact = f"{rng.choice(EN_FIRST)} {rng.choice(EN_LAST)}"
    attachments = rng.sample(EN_ATTACH, rng.randrange(0, 3))
    return {
        "recipient": rng.choice(EN_RECIPIENTS),
        "via": None,
        "title": topic,
        "doc_number": f"{rng.choice(['REF', 'MFA', 'DFE', 'WHO'])}/{date.year}/{rng.randrange(10, 9999)}",
        "date": date.isoformat(),
        "sender_org": org,
        "sender_name": name,
        "contact": {
            "name": contact,
            "phone": " ".join(
                [
                    f"+{rng.choice(['44', '81', '41', '1'])}",
                    str(rng.randrange(10, 99)),
                    str(rng.randrange(1000, 9999)),
                    str(rng.randrange(1000, 9999)),
                ]
            ),
            "fax": None,
            "email": f"{contact.split()[0].lower()}.{contact.split()[1].lower()}@example.org",
        },
        "attachments": attachments or None,
        "disclosure": None,
        "request_summary": action,
        "reply_deadline": deadline.isoformat() if deadline else None,
        "_title": rng.choice(EN_TITLES),
        "_address": address,
    }


Renderer = Callable[[random.Random, dict[str, Any]], str]
