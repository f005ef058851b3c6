"""Checksums and format tables for number-like PII: card brands, IBAN, ABA routing, barcodes, phones.

Pure functions over digit strings (or compact IBANs); ``pii.py`` finds the
candidates and calls these. Phone numbers are checked with ``phonenumbers``
(Google's libphonenumber metadata, shipped offline in the wheel) only after a
cheap shape test, so text without phone-shaped digit runs never reaches it.
"""

from __future__ import annotations

import re
from functools import lru_cache

import phonenumbers

# ------------------------------------------------------------------ cards ----
# (lowest IIN, highest IIN, allowed lengths): public brand ranges as the networks publish them. A number is a
# card when some row's range holds its prefix (compared as equal-length strings) and its length.
_CARD_RANGES: tuple[tuple[str, str, frozenset[int]], ...] = (
    ("4", "4", frozenset({13, 16, 19})),  # Visa
    ("51", "55", frozenset({16})),  # Mastercard
    ("2221", "2720", frozenset({16})),  # Mastercard 2-series
    ("34", "34", frozenset({15})),  # American Express
    ("37", "37", frozenset({15})),
    ("6011", "6011", frozenset({16, 17, 18, 19})),  # Discover
    ("644", "649", frozenset({16, 17, 18, 19})),
    ("65", "65", frozenset({16, 17, 18, 19})),
    ("622126", "622925", frozenset({16, 17, 18, 19})),
    (
        "35",
        "35",
        frozenset({16, 17, 18, 19}),
    ),  # JCB: 3528-3589 issued; 3500-3527 its reserve (test numbers use it)
    ("2131", "2131", frozenset({15})),  # JCB (legacy)
    ("1800", "1800", frozenset({15})),
    ("300", "305", frozenset({14, 15, 16, 17, 18, 19})),  # Diners Club
    ("3095", "3095", frozenset({14, 15, 16, 17, 18, 19})),
    ("36", "36", frozenset({14, 15, 16, 17, 18, 19})),
    ("38", "39", frozenset({14, 15, 16, 17, 18, 19})),
    ("62", "62", frozenset({16, 17, 18, 19})),  # UnionPay
    ("81", "81", frozenset({16, 17, 18, 19})),
    ("2200", "2204", frozenset({16, 17, 18, 19})),  # Mir
    ("50", "50", frozenset(range(12, 20))),  # Maestro (50xxxx, 56-69)
    ("56", "69", frozenset(range(12, 20))),
    ("0604", "0604", frozenset(range(12, 20))),  # Maestro 0604
    ("1", "1", frozenset({15})),  # UATP
    ("9", "9", frozenset({16})),  # Korean domestic cards (BC, local issuers)
)


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


def card_brand_ok(digits: str) -> bool:
    """IIN range and length of a known brand (the Luhn check is separate)."""
    n = len(digits)
    return any(n in lengths and lo <= digits[: len(lo)] <= hi for lo, hi, lengths in _CARD_RANGES)


def gtin_ok(digits: str) -> bool:
    """GS1 check digit (EAN-8, UPC-A, EAN-13, GTIN-14): weights 3,1,3,... from the right, before the check."""
    if len(digits) not in (8, 12, 13, 14):
        return False
    body, check = digits[:-1], ord(digits[-1]) - 48
    total = sum((ord(c) - 48) * (3 if i % 2 == 0 else 1) for i, c in enumerate(reversed(body)))
    return (10 - total % 10) % 10 == check


# ------------------------------------------------------------------- IBAN ----
# ISO 13616 lengths per country (SWIFT IBAN registry).
IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BI": 27,
    "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27, "DK": 18, "DO": 28,
    "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
    "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27,
    "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25,
    "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18,
    "NO": 15, "OM": 23, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33,
    "SA": 24, "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28,
    "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}  # fmt: skip


def iban_ok(compact: str) -> bool:
    """Country length and the mod-97 check of an upper-case IBAN without separators."""
    if IBAN_LENGTHS.get(compact[:2]) != len(compact) or not compact[2:4].isdigit():
        return False
    moved = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


# -------------------------------------------------------------- bank / ABA ----
def aba_ok(digits: str) -> bool:
    """US ABA routing transit number: 9 digits, weights 3-7-1, first two digits a Federal Reserve range."""
    if len(digits) != 9:
        return False
    head = int(digits[:2])
    if not (0 <= head <= 12 or 21 <= head <= 32 or 61 <= head <= 72 or head == 80):
        return False
    d = [ord(c) - 48 for c in digits]
    return (3 * (d[0] + d[3] + d[6]) + 7 * (d[1] + d[4] + d[7]) + d[2] + d[5] + d[8]) % 10 == 0


# ------------------------------------------------------------------ phones ----
# Regions tried for numbers written without a country code, in order (the list).
NATIONAL_REGIONS: tuple[str, ...] = ("KR", "US", "JP", "CN", "GB", "DE", "FR")

# Shapes that are phone numbers whatever the digits (the libraries' own validity tables lag behind
# number plans and reject the reserved/fictional ranges people paste as examples).
_NANP = re.compile(r"(?:1[ .\-]?)?(?:\(\d{3}\)[ .\-]?|\d{3}[ .\-])\d{3}[ .\-]\d{4}")
_TRUNK0 = re.compile(r"(?:\(0\d{1,4}\)[ .\-]{0,2}|0\d{1,4}[ .\-]{1,2})\d{2,8}(?:[ .\-]{1,2}\d{2,8}){0,3}")
_TRUNK0_BARE = re.compile(r"0[1-9]\d{8,9}")
_ZIP4 = re.compile(r"\d{5}-\d{4}")
_CN_MOBILE = re.compile(r"1[3-9]\d(?:[ \-]?\d{4}){2}")
_KR_MOBILE = re.compile(r"01[016789](?:[ .\-]?\d{3,4})[ .\-]?\d{4}")
_AREA2 = re.compile(r"\(?\d{2}\)?[ .\-]?\d{4,5}[ .\-]\d{4}")  # BR-style (11) 91234-5678
_DATE = re.compile(
    r"(?<!\d)(?:(?:19|20)\d\d[./\- ](?:0?[1-9]|1[0-2])[./\- ](?:0?[1-9]|[12]\d|3[01])"
    r"|(?:0?[1-9]|[12]\d|3[01])[./\- ](?:0?[1-9]|[12]\d|3[01])[./\- ](?:19|20)\d\d)(?!\d)"
)


_NON_DIGIT = re.compile(r"\D")


@lru_cache(maxsize=4096)
def _possible_international(digits: str) -> bool:
    try:
        num = phonenumbers.parse("+" + digits, None)
    except phonenumbers.NumberParseException:
        return False
    return phonenumbers.is_possible_number(num)


@lru_cache(maxsize=4096)
def _valid_national(digits: str) -> bool:
    for region in NATIONAL_REGIONS:
        try:
            num = phonenumbers.parse(digits, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(num):
            return True
    return False


def load_phone_metadata() -> None:
    """Load ``phonenumbers``' metadata of ``NATIONAL_REGIONS`` now (it loads lazily, ~3 ms on first use)."""
    for region in NATIONAL_REGIONS:
        phonenumbers.example_number(region)


def phone_ok(main: str, *, international: bool, context: bool) -> bool:
    """Whether a candidate (without its extension) is a phone number.

    ``international``: written with ``+`` or ``00`` (``main`` then starts with it); ``context``: a phone word
    is near. With a country code, the country's possible lengths decide. Without one, a known national shape
    (NANP 3-3-4, a trunk-0 number with groups, Chinese or Korean mobiles) is enough; other digit runs need a
    phone word nearby and a number valid in one of ``NATIONAL_REGIONS``.
    """
    digits = _NON_DIGIT.sub("", main)
    n = len(digits)
    if international:
        if main.startswith("00"):
            if not context and main.isdigit():
                return False  # a bare 00... run is an id more often than a dialled number
            digits = digits[2:]
        return 7 <= len(digits) <= 15 and _possible_international(digits)
    if not 8 <= n <= 13 or _DATE.search(main) or _ZIP4.fullmatch(main):
        return False
    if _TRUNK0_BARE.fullmatch(main):
        return _valid_national(digits)
    if (
        _NANP.fullmatch(main)
        or _KR_MOBILE.fullmatch(main)
        or _CN_MOBILE.fullmatch(main)
        or (n >= 9 and _TRUNK0.fullmatch(main))
        or (n in (10, 11) and _AREA2.fullmatch(main))
    ):
        return True
    return context and n >= 9 and _valid_national(digits)
