"""PII and secret detection on the original text (spans are exact offsets).

Categories (``PiiCategory``): email, phone, rrn (Korean resident registration
number), credit_card, bank_account, iban, passport, driver_license, ip_address,
secret. Every detector is a precompiled regex plus a cheap validator that removes
near-misses (tables and checksums in ``identifiers.py``): Luhn plus brand IIN
range and length for cards (GS1 barcodes refused unless a card word is near),
ISO 13616 length and mod-97 for IBANs, phone shapes and ``phonenumbers`` for
phones, calendar date for RRNs, a bank word nearby for account numbers (ABA
checksum after "routing"), a passport or driving-licence word nearby for those,
``ipaddress`` parsing and a version-string check for IPs.
"""

from __future__ import annotations

import bisect
import datetime as _dt
import ipaddress
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import get_args

from gateway.config.guardrails import PiiCategory
from gateway.guardrails.identifiers import (
    IBAN_LENGTHS,
    aba_ok,
    card_brand_ok,
    gtin_ok,
    iban_ok,
    load_phone_metadata,
    luhn_ok,
    phone_ok,
)

PII_CATEGORIES: tuple[PiiCategory, ...] = get_args(PiiCategory)

PLACEHOLDER_TAG: dict[str, str] = {
    "email": "EMAIL",
    "phone": "PHONE",
    "rrn": "RRN",
    "credit_card": "CARD",
    "bank_account": "ACCOUNT",
    "iban": "IBAN",
    "passport": "PASSPORT",
    "driver_license": "LICENSE",
    "ip_address": "IP",
    "secret": "SECRET",
}


@dataclass(frozen=True, slots=True)
class PiiMatch:
    category: PiiCategory
    start: int
    end: int
    value: str

    @property
    def key(self) -> str:
        """Canonical form: the same number written with or without separators maps to one key."""
        if self.category in ("phone", "rrn", "credit_card", "bank_account"):
            return self.category + ":" + re.sub(r"\D", "", self.value)
        if self.category in ("iban", "passport", "driver_license"):
            return self.category + ":" + re.sub(r"[^0-9A-Za-z]", "", self.value).upper()
        if self.category in ("email", "ip_address"):
            return self.category + ":" + self.value.lower()
        return self.category + ":" + self.value


# ----------------------------------------------------------------- regexes ----
_EMAIL = re.compile(
    r"(?<![A-Za-z0-9._%+\-])[A-Za-z0-9][A-Za-z0-9._%+\-]{0,63}@[A-Za-z0-9](?:[A-Za-z0-9\-]{0,62}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]{0,62}[A-Za-z0-9])?)*\.[A-Za-z]{2,24}(?![A-Za-z0-9\-])"
)

# A phone candidate: optional +CC/00CC, digit groups and bracketed groups ("(0)" trunk marks, "(415)") joined
# by at most one space and/or one dot or dash, then an optional extension. ``phone_ok`` decides. Two digit
# groups are always separated (a digit run is one group), so a long digit run cannot be split in many ways
# when the match fails: no catastrophic backtracking.
_PH_SEP1 = r"(?:[ \u00a0][.\-]?[ \u00a0]?|[.\-][ \u00a0]?)"
_PH_NEXT = rf"(?:{_PH_SEP1}\d{{1,15}}|(?<=\))\d{{1,15}}|{_PH_SEP1}?\(\d{{1,5}}\))"
_PHONE = re.compile(
    r"(?<![0-9A-Za-z_+\-./])(?=(?:[^\d\n]{0,3}\d){8})"
    rf"(?P<main>(?P<intl>\+|00(?=[1-9]))?(?:\(\d{{1,5}}\)|\d{{1,15}}){_PH_NEXT}{{0,6}})"
    r"(?P<ext>[ \u00a0]?(?:x|ext\.?|extn\.?|extension|#|내선)[ \u00a0]?\d{1,6})?"
    r"(?![0-9A-Za-z_\-]|[.,]\d)"
)

# Context words per kind, found with ``str.find`` on the lower-cased text (far cheaper than a regex
# alternation); a word written ``^word`` must not touch another Latin letter on either side.
_CUE_TEXT: dict[str, str] = {
    "phone": "^phone ^phones ^tel ^telephone ^mobile ^cell ^cellphone ^call ^fax ^contact ^whatsapp ^sms "
    "^dial ^reach ^ring ^hotline ^telefon ^handy ^téléphone ^portable ^tél "
    "전화 휴대폰 핸드폰 연락처 電話 携帯 电话 手机",
    "card": "^card ^cards ^visa ^mastercard ^amex ^maestro ^discover ^jcb ^diners ^unionpay ^credit ^debit "
    "^cc ^pan 카드 신용 체크 결제",
    "barcode": "^barcode ^ean ^upc ^gtin ^isbn ^sku ^article 바코드 상품코드 품번 제품코드",
    "order": "^order ^invoice ^tracking ^shipment ^parcel ^ticket ^booking ^reservation ^ref ^reference "
    "^serial ^transaction ^txn 주문 송장 예약 일련",
    "routing": "^routing ^aba ^rtn ^transit 라우팅",
    "bank": "^account ^acct a/c ^bank ^iban ^deposit ^wire ^checking ^savings ^kb ^nh ^ibk ^kdb ^sc ^citi "
    "계좌 은행 통장 입금 송금 이체 예금주 뱅크 국민 신한 우리 하나 농협 기업 카카오 토스 케이뱅크 "
    "우체국 새마을 수협 신협 씨티 산업",
    "passport": "passport 여권 旅券 パスポート 护照 護照 reisepass passeport pasaporte passaporto paspoort",
}
_CUE_WORDS: dict[str, tuple[tuple[str, bool], ...]] = {
    kind: tuple((w.lstrip("^"), w.startswith("^")) for w in words.split())
    for kind, words in _CUE_TEXT.items()
}
_CUE_WORDS["license"] = tuple(
    (w, w.isascii() and "/" not in w)
    for w in ("운전면허", "운전 면허", "면허번호", "면허 번호", "免許", "驾驶证", "駕駛", "führerschein",
              "permis de conduire", "licencia de conducir", "dl", "d/l")
)  # fmt: skip
# "licence"/"license" is a cue only as a driver's/driving licence or a licence number/no./#/id.
_LICENSE_BEFORE = re.compile(r"(?:driver'?s?|driving)\s*\Z")
_LICENSE_AFTER = re.compile(r"licen[cs]e\s*(?:no|num|number|#|id)?(?![a-z])")
_LICENSE_GATE = ("licen", "면허", "免許", "驾驶证", "駕駛", "führerschein", "permis de conduire", "dl", "d/l")
_BANK = ("bank", "routing")  # words that make a digit run an account rather than a phone number

_RRN = re.compile(r"(?<![0-9A-Za-z_\-.])(\d{2})(\d{2})(\d{2})\s?[-–]\s?([1-8])\d{6}(?![0-9A-Za-z_\-])")
_RRN_BARE = re.compile(r"(?<![0-9A-Za-z_\-.])(\d{2})(\d{2})(\d{2})([1-8])\d{6}(?![0-9A-Za-z_\-])")
_RRN_KEYWORD = re.compile(r"주민|resident registration|rrn|외국인\s*등록", re.IGNORECASE)

_CARD = re.compile(
    r"(?<![0-9A-Za-z_\-.])(?:\d{4}(?P<s>[ \-])\d{4}(?P=s)\d{4}(?:(?P=s)\d{1,4}){0,2}"
    r"|\d{4}(?P<t>[ \-])\d{6}(?P=t)\d{4,5}"
    r"|\d{12,19})"
    r"(?![0-9A-Za-z_\-]|\.\d)"
)

_ACCOUNT = re.compile(
    r"(?<![0-9A-Za-z_\-.])(?:\d{2,6}-\d{2,6}-\d{2,7}(?:-\d{1,3})?|\d{8,17})(?![0-9A-Za-z_\-]|[.,]\d)"
)
# An amount, not an account: currency right after the digits.
_CURRENCY_AFTER = re.compile(r"\s?(?:원|만원|억|달러|won|krw|usd|eur|dollars?|€|\$)", re.IGNORECASE)

_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?:[ \-]?[A-Z0-9]){11,32}")

_PASSPORT = re.compile(
    r"(?<![A-Za-z0-9\-])(?:[A-Z]{1,2}\d{6,9}|[A-Z]\d{3}[A-Z]\d{4}|\d{9}"
    r"|(?=[A-Z0-9]{0,8}\d[A-Z0-9]{0,8}\d[A-Z0-9]{0,7}\d)(?=[0-9]{0,8}[A-Z])[A-Z0-9]{9})"
    r"(?![A-Za-z0-9\-])"
)
_KR_REGIONS = "서울|부산|경기|강원|충북|충남|전북|전남|경북|경남|제주|대구|인천|광주|대전|울산"
_LICENSE = re.compile(
    rf"(?<![0-9A-Za-z\-])(?:(?:{_KR_REGIONS}|\d{{2}})-?\d{{2}}[ \-]?\d{{6}}[ \-]?\d{{2}}"
    r"|\d{3} \d{3} \d{3}"
    r"|(?=[A-Z0-9\-]*\d{3})[A-Z]{0,4}\d[A-Z0-9]{2,15}(?:-[A-Z0-9]{1,8}){0,4})"
    r"(?![0-9A-Za-z\-])"
)

_IPV4 = re.compile(
    r"(?<![0-9A-Za-z_.\-])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
    r"(?:/\d{1,2})?(?![0-9A-Za-z_\-]|\.\d)"
)
_VERSION_CUE = re.compile(
    r"(?<![A-Za-z])(?:version|ver\.?|v|release[sd]?|build|section|chapter|spec|firmware|patch|sdk|python|node|"
    r"java|chrome|ios|android|update|rc)(?![A-Za-z])|버전|릴리스|릴리즈|빌드|펌웨어|패치|업데이트|조항|섹션",
    re.IGNORECASE,
)
_IP_CUE = re.compile(
    r"(?<![A-Za-z])(?:ip|ips|ipv4|address|addr|host|server|subnet|gateway|dns|ping|firewall|proxy|client|"
    r"bind|route|cidr|vpn|lan|wan)(?![A-Za-z])|서버|주소|접속|게이트웨이|내부망|외부망|방화벽|아이피",
    re.IGNORECASE,
)
_IPV6 = re.compile(
    r"(?<![0-9A-Za-z_:.])(?:[0-9A-Fa-f]{1,4}:){1,7}(?::|(?::[0-9A-Fa-f]{1,4}){1,7}|[0-9A-Fa-f]{1,4})"
    r"(?:(?<=:)(?:\d{1,3}\.){3}\d{1,3})?(?:%\w+)?(?:/\d{1,3})?(?![0-9A-Za-z_:])"
    r"|(?<![0-9A-Za-z_:.])::(?:[0-9A-Fa-f]{1,4}:){0,6}[0-9A-Fa-f]{1,4}(?:/\d{1,3})?(?![0-9A-Za-z_:])"
)

# (literal gate, pattern): a pattern only runs when its gate substring occurs in the text.
_SECRET_RULES: tuple[tuple[tuple[str, ...], re.Pattern[str]], ...] = tuple(
    (gates, re.compile(p, re.DOTALL))
    for gates, p in (
        (
            ("-----BEGIN",),
            r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----(?:.*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY"
            r"(?: BLOCK)?-----|.*\Z)",
        ),
        (("sk-",), r"(?<![0-9A-Za-z_\-])sk-(?:proj-|svcacct-|admin-|ant-(?:api\d\d-)?)?[A-Za-z0-9_\-]{20,}"),
        (
            ("AKIA", "ASIA", "AGPA", "AIDA", "AROA"),
            r"(?<![A-Z0-9])(?:AKIA|ASIA|AGPA|AIDA|AROA)[0-9A-Z]{16}(?![A-Z0-9])",
        ),
        (("gh",), r"(?<![0-9A-Za-z_])gh[pousr]_[A-Za-z0-9]{30,}"),
        (("github_pat_",), r"(?<![0-9A-Za-z_])github_pat_[A-Za-z0-9_]{22,}"),
        (("eyJ",), r"(?<![0-9A-Za-z_\-])eyJ[A-Za-z0-9_\-]{5,}\.eyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]{8,}"),
        (("xox",), r"(?<![0-9A-Za-z_])xox[abposr]-[A-Za-z0-9\-]{10,}"),
        (("AIza",), r"(?<![0-9A-Za-z_])AIza[0-9A-Za-z_\-]{35}"),
        (("_live_",), r"(?<![0-9A-Za-z_])(?:sk|rk)_live_[0-9A-Za-z]{20,}"),
    )
)

# Cheap prefilters: skip whole detectors when their anchor character is absent.
_HAS_DIGIT = re.compile(r"\d")


def _looks_like_version(v: str) -> bool:
    """``1.2.3.4``-like: a one-digit first part, no part above 29 (such an address needs a network word)."""
    parts = v.split("/")[0].split(".")
    return len(parts[0]) == 1 and all(int(p) < 30 for p in parts)


def _rrn_date_ok(yy: str, mm: str, dd: str, g: str) -> bool:
    century = {"1": 1900, "2": 1900, "5": 1900, "6": 1900, "3": 2000, "4": 2000, "7": 2000, "8": 2000}[g]
    try:
        d = _dt.date(century + int(yy), int(mm), int(dd))
    except ValueError:
        return False
    return d <= _dt.date.today()


_NON_DIGIT = re.compile(r"\D")


def _digits(s: str) -> str:
    return _NON_DIGIT.sub("", s)


def _is_latin(ch: str) -> bool:
    return "a" <= ch <= "z"


class _Cues:
    """The context words of one text, found per kind on first need, then looked up by bisection.

    Search runs on ``text.lower()``; where lower-casing changes the length (rare letters such as ``İ``),
    offsets drift by those few characters, which only blurs the distance windows.
    """

    __slots__ = ("_lower", "_spans", "_text")

    def __init__(self, text: str) -> None:
        self._text = text
        self._lower = text.lower()
        self._spans: dict[str, list[tuple[int, int]]] = {}

    def spans(self, kind: str) -> list[tuple[int, int]]:
        spans = self._spans.get(kind)
        if spans is None:
            spans = self._find(_CUE_WORDS[kind])
            if kind == "license":
                spans = sorted(spans + self._licence_words())
            self._spans[kind] = spans
        return spans

    def _find(self, words: tuple[tuple[str, bool], ...]) -> list[tuple[int, int]]:
        hay = self._lower
        n = len(hay)
        out: list[tuple[int, int]] = []
        for w, bounded in words:
            i = hay.find(w)
            while i != -1:
                j = i + len(w)
                if not bounded or (
                    (i == 0 or not _is_latin(hay[i - 1])) and (j >= n or not _is_latin(hay[j]))
                ):
                    out.append((i, j))
                i = hay.find(w, i + 1)
        out.sort()
        return out

    def _licence_words(self) -> list[tuple[int, int]]:
        hay = self._lower
        out: list[tuple[int, int]] = []
        i = hay.find("licen")
        while i != -1:
            m = _LICENSE_AFTER.match(hay, i)
            if m is not None and (m.end() - i > 7 or _LICENSE_BEFORE.search(hay, max(0, i - 12), i)):
                out.append((i, m.end()))
            i = hay.find("licen", i + 1)
        return out

    def has(self, words: tuple[str, ...]) -> bool:
        """Cheap gate: one of these lower-case substrings occurs."""
        return any(w in self._lower for w in words)

    def near(
        self, kinds: tuple[str, ...], start: int, end: int, *, before: int = 40, after: int = 24
    ) -> bool:
        """A cue of one of ``kinds`` within ``before`` characters before the span or ``after`` after it."""
        lo, hi = start - before, end + after
        for kind in kinds:
            spans = self.spans(kind)
            i = bisect.bisect_left(spans, (lo, -1))
            while i < len(spans) and spans[i][0] < hi:
                s, e = spans[i]
                if e <= start or (s >= end and e <= hi):
                    return True
                i += 1
        return False


def _card_ok(cues: _Cues, start: int, end: int, value: str) -> bool:
    d = _digits(value)
    if not (card_brand_ok(d) and luhn_ok(d) and len(set(d)) > 1):
        return False
    if cues.near(("barcode",), start, end):
        return False
    if d == value and cues.near(("bank",), start, end, after=15) and not cues.near(("card",), start, end):
        return False  # a bare run next to a bank word: an account number (``bank_account`` takes it)
    if len(d) <= 13 and d == value and (gtin_ok(d) or cues.near(("order",), start, end)):
        # a short bare run that is a valid UPC-A / EAN-13 or next to an order word: only with a card word near
        return cues.near(("card",), start, end)
    return True


def _iban_span(raw: str) -> int:
    """Length of the IBAN at the start of ``raw`` (0 if none): the country's length, then mod-97."""
    want = IBAN_LENGTHS.get(raw[:2])
    if want is None:
        return 0
    count = 0
    for i, ch in enumerate(raw):
        if ch.isalnum():
            count += 1
            if count == want:
                compact = re.sub(r"[ \-]", "", raw[: i + 1])
                rest = raw[i + 1 : i + 2]
                return i + 1 if iban_ok(compact) and not rest.isalnum() else 0
    return 0


class _Taken:
    """Spans accepted so far in one text (sorted, non-overlapping); later candidates overlapping them lose."""

    __slots__ = ("matches", "starts")

    def __init__(self) -> None:
        self.matches: list[PiiMatch] = []
        self.starts: list[int] = []

    def free(self, start: int, end: int) -> bool:
        i = bisect.bisect_right(self.starts, start)
        return (i == 0 or self.matches[i - 1].end <= start) and (
            i == len(self.matches) or end <= self.matches[i].start
        )

    def add(self, m: PiiMatch) -> None:
        i = bisect.bisect_right(self.starts, m.start)
        self.matches.insert(i, m)
        self.starts.insert(i, m.start)


def _phones(text: str, cues: _Cues, taken: _Taken) -> Iterator[PiiMatch]:
    pos = 0
    n = len(text)
    while pos < n:
        m = _PHONE.search(text, pos)
        if m is None:
            return
        pos = m.end()
        main = m.group("main")
        intl = m.group("intl") is not None
        start = m.start()
        ctx: bool | None = None
        # Greedy groups may run into a neighbouring number (or one already taken as a card, an IBAN...):
        # retry without trailing space-separated groups.
        end = m.end()
        while (digits := len(_digits(main))) >= 8:
            if not taken.free(start, start + 1):
                break
            if taken.free(start, end):
                if intl and main[0] == "+":
                    ok = phone_ok(main, international=True, context=False)
                else:
                    ok = phone_ok(main, international=intl, context=False)
                    if not ok and digits >= 9:
                        if ctx is None:
                            ctx = cues.near(("phone",), start, start, after=0)
                        ok = ctx and phone_ok(main, international=intl, context=True)
                    if ok:
                        if ctx is None:
                            ctx = cues.near(("phone",), start, start, after=0)
                        if not ctx and (
                            cues.near(_BANK, start, m.end(), after=15)
                            or cues.near(("order",), start, m.end())
                        ):
                            break  # an account or order number unless a phone word is near
                if ok:
                    yield PiiMatch("phone", start, end, text[start:end])
                    pos = end
                    break
            cut = main.rstrip().rfind(" ")
            if cut <= 0:
                break
            main = main[:cut].rstrip(" \u00a0")
            end = start + len(main)


def _cued(
    cues: list[tuple[int, int]], token: re.Pattern[str], text: str, category: PiiCategory
) -> Iterator[PiiMatch]:
    """Tokens starting at most 44 characters after a cue word's start, or ending at most 44 before its end.

    (The stream guard keeps 48 characters on each side: ``output._CONTEXT`` and ``output._RIGHT_CONTEXT``.)
    """
    last = -1
    for c_start, c_end in cues:
        for t in token.finditer(text, max(last, c_end - 64, 0), min(len(text), c_start + 64)):
            if t.start() - c_start > 44 or c_end - t.end() > 44:
                continue
            if t.start() >= last and (t.end() <= c_start or t.start() >= c_end):
                last = t.end()
                yield PiiMatch(category, t.start(), t.end(), t.group(0))


class PiiDetector:
    """All detectors compiled at import; ``detect`` returns non-overlapping matches sorted by start."""

    def __init__(self, categories: frozenset[str] | None = None) -> None:
        self.categories = frozenset(PII_CATEGORIES) if categories is None else categories
        if "phone" in self.categories:
            load_phone_metadata()  # at construction (config load), not inside the first request

    def _iter(self, text: str, taken: _Taken) -> Iterator[PiiMatch]:
        cats = self.categories
        if "secret" in cats:
            for gates, rx in _SECRET_RULES:
                if any(g in text for g in gates):
                    for m in rx.finditer(text):
                        yield PiiMatch("secret", m.start(), m.end(), m.group(0))
        if "email" in cats and "@" in text:
            for m in _EMAIL.finditer(text):
                yield PiiMatch("email", m.start(), m.end(), m.group(0))
        if not _HAS_DIGIT.search(text):
            return
        cues = _Cues(text)
        if "iban" in cats:
            for m in _IBAN.finditer(text):
                span = _iban_span(m.group(0))
                if span:
                    yield PiiMatch("iban", m.start(), m.start() + span, m.group(0)[:span])
        if "rrn" in cats:
            for m in _RRN.finditer(text):
                if _rrn_date_ok(*m.group(1, 2, 3, 4)):
                    yield PiiMatch("rrn", m.start(), m.end(), m.group(0))
            for m in _RRN_BARE.finditer(text):
                if _rrn_date_ok(*m.group(1, 2, 3, 4)) and _RRN_KEYWORD.search(
                    text, max(0, m.start() - 40), m.start()
                ):
                    yield PiiMatch("rrn", m.start(), m.end(), m.group(0))
        if "credit_card" in cats:
            for m in _CARD.finditer(text):
                if _card_ok(cues, m.start(), m.end(), m.group(0)):
                    yield PiiMatch("credit_card", m.start(), m.end(), m.group(0))
        if "passport" in cats:
            yield from _cued(cues.spans("passport"), _PASSPORT, text, "passport")
        if "driver_license" in cats and cues.has(_LICENSE_GATE):
            yield from _cued(cues.spans("license"), _LICENSE, text, "driver_license")
        if "phone" in cats:
            yield from _phones(text, cues, taken)
        if "bank_account" in cats:
            for m in _ACCOUNT.finditer(text):
                d = _digits(m.group(0))
                if not 8 <= len(d) <= 17 or _CURRENCY_AFTER.match(text, m.end()):
                    continue
                if (len(d) == 9 and aba_ok(d) and cues.near(("routing",), m.start(), m.end())) or cues.near(
                    ("bank",), m.start(), m.end(), after=15
                ):
                    yield PiiMatch("bank_account", m.start(), m.end(), m.group(0))
        if "ip_address" in cats:
            if "." in text:
                for m in _IPV4.finditer(text):
                    lo = max(0, m.start() - 30)
                    if (
                        _VERSION_CUE.search(text, lo, m.start())
                        or _VERSION_CUE.search(text, m.end(), min(len(text), m.end() + 25))
                    ) and not _IP_CUE.search(text, max(0, m.start() - 20), m.start()):
                        continue
                    if _looks_like_version(m.group(0)) and not (
                        _IP_CUE.search(text, lo, m.start())
                        or _IP_CUE.search(text, m.end(), min(len(text), m.end() + 25))
                    ):
                        continue
                    yield PiiMatch("ip_address", m.start(), m.end(), m.group(0))
            if ":" in text:
                for m in _IPV6.finditer(text):
                    v = m.group(0)
                    base = v.split("/")[0].split("%")[0]
                    if sum(1 for p in base.split(":") if p) < 2:
                        continue
                    try:
                        ipaddress.IPv6Address(base)
                    except ValueError:
                        continue
                    yield PiiMatch("ip_address", m.start(), m.end(), v)

    def detect(self, text: str) -> list[PiiMatch]:
        if not text:
            return []
        # Priority = yield order (secrets first); later matches overlapping an accepted one are dropped.
        taken = _Taken()
        for m in self._iter(text, taken):
            if taken.free(m.start, m.end):
                taken.add(m)
        return taken.matches


def replace_spans(text: str, matches: list[PiiMatch], repl: Callable[[PiiMatch], str]) -> str:
    """Replace non-overlapping, start-sorted matches."""
    if not matches:
        return text
    out: list[str] = []
    pos = 0
    for m in matches:
        out.append(text[pos : m.start])
        out.append(repl(m))
        pos = m.end
    out.append(text[pos:])
    return "".join(out)
