"""PII and secret detection on the original text (spans are exact offsets).

Categories (``PiiCategory``): email, phone, rrn (Korean resident registration
number), credit_card, bank_account, ip_address, secret. Every detector is a
precompiled regex plus a cheap validator that removes near-misses: Luhn and IIN
prefix for cards, calendar date for RRNs, a bank keyword nearby for account
numbers, ``ipaddress`` parsing and a version-string check for IPs.
"""

from __future__ import annotations

import datetime as _dt
import ipaddress
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import get_args

from gateway.config.guardrails import PiiCategory

PII_CATEGORIES: tuple[PiiCategory, ...] = get_args(PiiCategory)

PLACEHOLDER_TAG: dict[str, str] = {
    "email": "EMAIL",
    "phone": "PHONE",
    "rrn": "RRN",
    "credit_card": "CARD",
    "bank_account": "ACCOUNT",
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
        if self.category in ("email", "ip_address"):
            return self.category + ":" + self.value.lower()
        return self.category + ":" + self.value


# ----------------------------------------------------------------- regexes ----
_EMAIL = re.compile(
    r"(?<![A-Za-z0-9._%+\-])[A-Za-z0-9][A-Za-z0-9._%+\-]{0,63}@[A-Za-z0-9](?:[A-Za-z0-9\-]{0,62}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]{0,62}[A-Za-z0-9])?)*\.[A-Za-z]{2,24}(?![A-Za-z0-9\-])"
)

_SEP = r"[ .\-]"
_PHONE = re.compile(
    "|".join(
        [
            # +82 (Korea): mobile or area code, optional (0)
            rf"\+82{_SEP}?(?:\(0\)\s?)?(?:1[016789]|2|[3-6][1-5]|70){_SEP}?\d{{3,4}}{_SEP}?\d{{4}}",
            # +1 NANP
            rf"\+1{_SEP}?\(?[2-9]\d{{2}}\)?{_SEP}?\d{{3}}{_SEP}?\d{{4}}",
            # other international (+CC ...), digit count checked by the validator
            rf"\+(?:[2-9]\d{{0,2}}){_SEP}?(?:\(\d{{1,4}}\){_SEP}?)?\d{{1,5}}(?:{_SEP}?\d{{2,5}}){{1,4}}",
            # Korean mobile 010-1234-5678 / 01012345678 / 010 1234 5678
            r"01[016789](?:(?P<s1>[ .\-])\d{3,4}(?P=s1)|\d{3,4})\d{4}",
            # Korean landline (separators required): 02-123-4567, (031)123-4567, 070-1234-5678
            r"(?:\(0(?:2|[3-6][1-5]|70)\)\s?|0(?:2|[3-6][1-5]|70)[ .\-])\d{3,4}[ .\-]\d{4}",
            # US domestic with parentheses or dashes: (415) 555-0100, 415-555-0100
            r"\([2-9]\d{2}\)\s?\d{3}[ .\-]\d{4}",
            r"[2-9]\d{2}-[2-9]\d{2}-\d{4}",
        ]
    ).join([r"(?<![0-9A-Za-z_+\-.])(?:", r")(?![0-9A-Za-z_\-]|\.\d)"])
)

_RRN = re.compile(r"(?<![0-9A-Za-z_\-.])(\d{2})(\d{2})(\d{2})\s?[-–]\s?([1-8])\d{6}(?![0-9A-Za-z_\-])")
_RRN_BARE = re.compile(r"(?<![0-9A-Za-z_\-.])(\d{2})(\d{2})(\d{2})([1-8])\d{6}(?![0-9A-Za-z_\-])")
_RRN_KEYWORD = re.compile(r"주민|resident registration|rrn|외국인\s*등록", re.IGNORECASE)

_CARD = re.compile(
    r"(?<![0-9A-Za-z_\-.])(?:\d{4}(?P<s>[ \-])\d{4}(?P=s)\d{4}(?P=s)\d{1,7}"
    r"|\d{4}(?P<t>[ \-])\d{6}(?P=t)\d{4,5}"
    r"|\d{13,19})"
    r"(?![0-9A-Za-z_\-]|\.\d)"
)
_CARD_IIN = re.compile(r"^(?:4|5[1-5]|2[2-7]|3[47]|3[0689]|35|6[0-9]|9[0-9]|1)")

_ACCOUNT = re.compile(
    r"(?<![0-9A-Za-z_\-.])(?:\d{2,6}-\d{2,6}-\d{2,7}(?:-\d{1,3})?|\d{10,14})(?![0-9A-Za-z_\-]|\.\d)"
)
_BANK_KEYWORD = re.compile(
    r"계좌|은행|통장|입금|송금|이체|예금주|뱅크|account|acct|a/c|bank|iban|deposit|wire|"
    r"국민|신한|우리|하나|농협|기업|카카오|토스|케이뱅크|우체국|새마을|수협|신협|씨티|sc제일|산업|"
    r"\b(?:kb|nh|ibk|kdb|sc|citi)\b",
    re.IGNORECASE,
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


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _rrn_date_ok(yy: str, mm: str, dd: str, g: str) -> bool:
    century = {"1": 1900, "2": 1900, "5": 1900, "6": 1900, "3": 2000, "4": 2000, "7": 2000, "8": 2000}[g]
    try:
        d = _dt.date(century + int(yy), int(mm), int(dd))
    except ValueError:
        return False
    return d <= _dt.date.today()


def _digits(s: str) -> str:
    return re.sub(r"\D", "", s)


class PiiDetector:
    """All detectors compiled at import; ``detect`` returns non-overlapping matches sorted by start."""

    def __init__(self, categories: frozenset[str] | None = None) -> None:
        self.categories = frozenset(PII_CATEGORIES) if categories is None else categories

    def _iter(self, text: str) -> Iterator[PiiMatch]:
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
                d = _digits(m.group(0))
                if 13 <= len(d) <= 19 and _CARD_IIN.match(d) and luhn_ok(d) and len(set(d)) > 1:
                    yield PiiMatch("credit_card", m.start(), m.end(), m.group(0))
        if "phone" in cats:
            for m in _PHONE.finditer(text):
                n = len(_digits(m.group(0)))
                if 9 <= n <= 15:
                    yield PiiMatch("phone", m.start(), m.end(), m.group(0))
        if "bank_account" in cats:
            for m in _ACCOUNT.finditer(text):
                d = _digits(m.group(0))
                if not 10 <= len(d) <= 14:
                    continue
                lo = max(0, m.start() - 40)
                if _BANK_KEYWORD.search(text, lo, m.start()) or _BANK_KEYWORD.search(
                    text, m.end(), min(len(text), m.end() + 15)
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
        accepted: list[PiiMatch] = []
        for m in self._iter(text):
            if all(m.end <= a.start or m.start >= a.end for a in accepted):
                accepted.append(m)
        accepted.sort(key=lambda m: m.start)
        return accepted


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
