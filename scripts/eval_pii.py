#!/usr/bin/env python
"""Evaluate the PII detector on values drawn from independent generators, plus hard negatives.

The values come from the ``Faker`` package (phones of 14 locales, IBANs of 10 countries, every card
type Faker knows, ABA routing numbers, passport numbers), never from the unit tests' examples; the
sentences around them are templates written here (EN and KO), with and without a context word. Hard
negatives (barcodes with valid check digits, version strings, dates, timestamps, prices, order and
tracking ids, UUIDs, hashes) are generated too. Strata that are not Faker values are named ``own:`` in
the per-source table (Korean bank accounts and driving licences, US driving licences: Faker has no
generator for them, so they follow the formats the detector was written for and flatter it).

    .venv/bin/python scripts/eval_pii.py [--n 200] [--seed 7] [--verbose] [--markdown] [--no-check]
        [--detector-root ../other-checkout]

A value counts as found when the detector reports the same category with exactly the labelled text.
Precision, recall and Wilson 95% intervals per category; a hard negative that yields any match is a
false positive of that match's category. Latency: ``Guardrails.check_input`` CPU time (this thread)
on 4,000-character messages built from the same sentences. Exits 1 when a category's recall < 0.97 or
precision < 0.95, or the p95 is over 10 ms (``--no-check`` to only print).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import string
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _detector_root(argv: list[str]) -> Path:
    """``--detector-root DIR``: score another checkout's detector (main before a change) on the same set."""
    for i, a in enumerate(argv[:-1]):
        if a == "--detector-root":
            return Path(argv[i + 1]).resolve()
    return ROOT


sys.path.insert(0, str(_detector_root(sys.argv)))

from faker import Faker  # noqa: E402

from gateway.config.guardrails import GuardrailsConfig  # noqa: E402
from gateway.experiments.stats import wilson_interval  # noqa: E402
from gateway.guardrails import Guardrails, PiiDetector  # noqa: E402

TARGET_RECALL = 0.97
TARGET_PRECISION = 0.95
TARGET_P95_MS = 10.0

PHONE_LOCALES = ("en_US", "en_CA", "ko_KR", "ja_JP", "zh_CN", "en_GB", "de_DE", "fr_FR")
OTHER_PHONE_LOCALES = ("es_ES", "it_IT", "nl_NL", "pt_BR", "en_AU", "en_IN")
IBAN_LOCALES = ("de_DE", "fr_FR", "en_GB", "nl_NL", "es_ES", "it_IT", "pl_PL", "pt_PT", "fi_FI", "de_AT")
CARD_TYPES = (
    "visa13",
    "visa16",
    "visa19",
    "mastercard",
    "amex",
    "discover",
    "diners",
    "jcb15",
    "jcb16",
    "maestro",
)

# {v} is the value. The first templates of each list carry no context word where the category allows it.
TEMPLATES: dict[str, list[str]] = {
    "phone": [
        "{v}",
        "Reach me at {v} after 6pm.",
        "My phone number is {v}.",
        "Call {v} if the package is late",
        "Contact: Jane Doe, {v}, Berlin office",
        "연락처는 {v} 입니다.",
        "제 휴대폰 번호 {v} 로 문자 주세요",
        "tel. {v}",
        "You can also fax {v} or email us.",
        "Please update the contact number to {v} in the CRM",
    ],
    "iban": [
        "{v}",
        "Please wire the refund to {v}.",
        "IBAN: {v}",
        "My IBAN is {v}, BIC to follow",
        "환불은 {v} 계좌로 보내주세요",
        "Beneficiary account {v} (EUR)",
    ],
    "credit_card": [
        "{v}",
        "Charge it to {v} please",
        "My card number is {v}",
        "credit card: {v} exp 09/27",
        "카드번호 {v} 로 결제해 주세요",
        "Use the Visa ending ... no wait, the full number is {v}",
    ],
    "bank_account": [
        "Bank account number: {v}",
        "Wire to account {v} at Chase",
        "계좌번호 {v} 로 입금 부탁드립니다",
        "송금할 계좌: {v} (예금주 홍길동)",
        "my checking account is {v}",
    ],
    "routing": [
        "routing number {v}",
        "ABA routing: {v}, account to follow",
        "The bank's routing number is {v}.",
        "라우팅 번호 {v}",
    ],
    "passport": [
        "My passport number is {v}.",
        "Passport: {v}",
        "여권번호 {v} 로 예약했어요",
        "passport no. {v}, issued 2019",
        "{v} is the number in my passport",
    ],
    "driver_license": [
        "Driver's license: {v}",
        "my driver license number is {v}",
        "운전면허번호 {v} 입니다",
        "DL# {v}",
        "driving licence {v} (UK)",
    ],
}

NEG_TEMPLATES = [
    "{v}",
    "See {v} for details.",
    "The value was {v} yesterday.",
    "참고: {v}",
]


@dataclass
class Case:
    text: str
    labels: list[tuple[str, str]]  # (category, value)
    source: str


@dataclass
class Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    by_source: dict[str, list[int]] = field(
        default_factory=lambda: defaultdict(lambda: [0, 0])
    )  # found, total


def wilson(k: int, n: int) -> tuple[float, float]:
    """95% Wilson score interval of k successes in n trials (the experiments' statistics)."""
    if n == 0:
        return (0.0, 1.0)
    interval = wilson_interval(k, n)
    return (interval.low, interval.high)


# ------------------------------------------------------------------ generators ----
def _group(rng: random.Random, digits: str, sizes: tuple[int, ...], sep: str) -> str:
    out, i = [], 0
    for s in sizes:
        out.append(digits[i : i + s])
        i += s
    if i < len(digits):
        out.append(digits[i:])
    return sep.join(x for x in out if x)


def _card_text(rng: random.Random, num: str) -> str:
    style = rng.random()
    if style < 0.5:
        return num
    sep = rng.choice([" ", "-"])
    if len(num) == 15 and num[:2] in ("34", "37"):
        return _group(rng, num, (4, 6, 5), sep)
    if len(num) == 14:
        return _group(rng, num, (4, 6, 4), sep)
    return _group(rng, num, (4, 4, 4, 4), sep)


def _iban_text(rng: random.Random, iban: str) -> str:
    return iban if rng.random() < 0.5 else " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))


def _e164(rng: random.Random, fake: Faker, cc: str) -> str:
    """A national number from Faker (one written with a trunk 0) rewritten with its country code."""
    raw = fake.phone_number()
    while not raw.startswith("0") or raw.startswith("00"):
        raw = fake.phone_number()
    national = "".join(ch for ch in raw if ch.isdigit())[1:]
    return "+" + cc + (national if rng.random() < 0.5 else " " + national)


def _kr_account(rng: random.Random) -> str:
    fmt = rng.choice(
        ["###-##-######", "###-######-#####", "######-##-######", "####-###-######", "###########"]
    )
    return "".join(str(rng.randrange(10)) if c == "#" else c for c in fmt)


def _us_account(rng: random.Random) -> str:
    return "".join(str(rng.randrange(10)) for _ in range(rng.randint(8, 17)))


def _kr_license(rng: random.Random) -> str:
    region = rng.choice(
        ["11", "12", "13", "14", "15", "16", "17", "18", "19", "20", "21", "22", "23", "24", "25"]
    )
    return f"{region}-{rng.randrange(100):02d}-{rng.randrange(1_000_000):06d}-{rng.randrange(100):02d}"


def _us_license(rng: random.Random) -> str:
    letters = string.ascii_uppercase
    fmt = rng.choice(["@#######", "@############", "#########", "@###-####-####", "########", "@@######"])
    return "".join(
        rng.choice(letters) if c == "@" else str(rng.randrange(10)) if c == "#" else c for c in fmt
    )


def _ean13(rng: random.Random) -> str:
    body = "".join(str(rng.randrange(10)) for _ in range(12))
    body = rng.choice(["400", "450", "880", "590", "978", "871"]) + body[3:]
    total = sum(int(c) * (3 if i % 2 else 1) for i, c in enumerate(body))
    return body + str((10 - total % 10) % 10)


def _upca(rng: random.Random) -> str:
    body = "".join(str(rng.randrange(10)) for _ in range(11))
    total = sum(int(c) * (3 if i % 2 == 0 else 1) for i, c in enumerate(body))
    return body + str((10 - total % 10) % 10)


def build_cases(n: int, seed: int) -> list[Case]:
    rng = random.Random(seed)
    fakers: dict[str, Faker] = {}

    def fk(loc: str) -> Faker:
        if loc not in fakers:
            f = Faker(loc)
            f.seed_instance(rng.randrange(1 << 30))
            fakers[loc] = f
        return fakers[loc]

    cases: list[Case] = []

    def add(cat: str, source: str, make: Callable[[], str], tmpl_key: str | None = None) -> None:
        for _ in range(n):
            v = make()
            t = rng.choice(TEMPLATES[tmpl_key or cat])
            cases.append(Case(t.format(v=v), [(cat, v)], source))

    for loc in PHONE_LOCALES:
        add("phone", f"faker:{loc}", fk(loc).phone_number)
    for loc, cc in (("ko_KR", "82"), ("ja_JP", "81"), ("en_GB", "44"), ("de_DE", "49"), ("fr_FR", "33")):
        add("phone", f"faker+e164:{loc}", lambda loc=loc, cc=cc: _e164(rng, fk(loc), cc))  # type: ignore[misc]
    for loc in IBAN_LOCALES:
        add("iban", f"faker:{loc}", lambda loc=loc: _iban_text(rng, fk(loc).iban()))  # type: ignore[misc]
    for ct in CARD_TYPES:
        add("credit_card", f"faker:{ct}", lambda ct=ct: _card_text(rng, fk("en_US").credit_card_number(ct)))  # type: ignore[misc]
    add("bank_account", "faker:aba", fk("en_US").aba, "routing")
    add("passport", "faker:passport", fk("en_US").passport_number)
    add("bank_account", "own:kr_account", lambda: _kr_account(rng))
    add("bank_account", "own:us_account", lambda: _us_account(rng))
    add("driver_license", "own:kr_license", lambda: _kr_license(rng))
    add("driver_license", "own:us_license", lambda: _us_license(rng))
    add("passport", "own:kr_passport", lambda: rng.choice("MSRODG") + f"{rng.randrange(10**8):08d}")
    # Phones of locales outside the list: reported apart, not gated.
    for loc in OTHER_PHONE_LOCALES:
        add("phone", f"other:{loc}", fk(loc).phone_number)
    return cases


def build_negatives(n: int, seed: int) -> list[Case]:
    rng = random.Random(seed + 1)
    f = Faker("en_US")
    f.seed_instance(seed)
    gens: dict[str, Callable[[], str]] = {
        "ean13": lambda: rng.choice(["barcode ", "EAN ", "", "item "]) + _ean13(rng),
        "upc_a": lambda: rng.choice(["UPC ", "barcode: ", ""]) + _upca(rng),
        "isbn13": lambda: "ISBN " + f.isbn13(),
        "version": lambda: (
            rng.choice(["v", "version ", "", "build "])
            + ".".join(str(rng.randrange(0, 30 if i else 12)) for i in range(rng.randint(3, 4)))
        ),
        "win_build": lambda: f"10.0.{rng.randrange(10000, 26000)}.{rng.randrange(1, 5000)}",
        "date": lambda: f.date(
            pattern=rng.choice(["%Y-%m-%d", "%d.%m.%Y", "%m/%d/%Y", "%Y.%m.%d", "%d-%m-%Y"])
        ),
        "timestamp": lambda: rng.choice(
            [
                f.iso8601(),
                str(f.unix_time())[:10],
                str(int(f.unix_time() * 1000)),
                f.date_time().strftime("%Y%m%d%H%M%S"),
            ]
        ),
        "price": lambda: rng.choice(
            [
                f.pricetag(),
                f"₩{rng.randrange(1000, 99_999_999):,}",
                f"{rng.randrange(1000, 9_999_999):,}원",
                f"EUR {rng.randrange(10, 99999)}.{rng.randrange(100):02d}",
            ]
        ),
        "order_id": lambda: (
            rng.choice(["Order #", "order ", "주문번호 ", "Invoice "])
            + rng.choice(
                [
                    f.bothify("##########"),
                    f.bothify("ORD-####-######"),
                    f.bothify("###-#######-#######"),
                    f.bothify("############"),
                ]
            )
        ),
        "tracking": lambda: (
            "tracking "
            + rng.choice(
                [
                    f.bothify("1Z###??##########").upper(),
                    f.bothify("############"),
                    f.bothify("####################"),
                ]
            )
        ),
        "uuid": lambda: str(uuid.UUID(int=rng.getrandbits(128))),
        "sha": lambda: f.sha1()[: rng.choice([7, 12, 40])],
        "coords": lambda: f"{f.latitude()}, {f.longitude()}",
        "math": lambda: (
            f"{rng.randrange(100, 999)} * {rng.randrange(1000, 9999)} = {rng.randrange(10**6, 10**7)}"
        ),
        "zip": lambda: f"{f.city()}, {f.state_abbr()} {f.zipcode_plus4()}",
    }
    out: list[Case] = []
    for name, g in gens.items():
        for _ in range(n):
            out.append(Case(rng.choice(NEG_TEMPLATES).format(v=g()), [], f"neg:{name}"))
    return out


# ------------------------------------------------------------------ scoring ----
def score(
    detector: PiiDetector, cases: list[Case]
) -> tuple[dict[str, Counts], list[str], dict[str, list[int]]]:
    counts: dict[str, Counts] = defaultdict(Counts)
    neg: dict[str, list[int]] = defaultdict(lambda: [0, 0])  # hit, total
    errors: list[str] = []
    for c in cases:
        found = [(m.category, m.value) for m in detector.detect(c.text)]
        gold = list(c.labels)
        gated = not c.source.startswith("other:")
        if not gold:
            neg[c.source][1] += 1
            neg[c.source][0] += int(bool(found))
        for cat, v in found:
            if (cat, v) in gold:
                gold.remove((cat, v))
                if gated:
                    counts[cat].tp += 1
                counts[cat].by_source[c.source][0] += 1
            else:
                if gated:
                    counts[cat].fp += 1
                errors.append(f"FP {cat} [{c.source}] {v!r} in {c.text!r}")
        for cat, v in gold:
            if gated:
                counts[cat].fn += 1
            errors.append(f"FN {cat} [{c.source}] {v!r} in {c.text!r}")
        for cat, _ in c.labels:
            counts[cat].by_source[c.source][1] += 1
    return counts, errors, neg


def latency(cases: list[Case], *, messages: int, seed: int, prose: float = 0.0) -> dict[str, float]:
    """CPU time of ``check_input`` (and of the PII detector alone) on 4,000-character messages.

    ``prose``: the share of sentences that are Faker filler text (EN and KO) instead of eval sentences.
    """
    rng = random.Random(seed + 2)
    g = Guardrails(GuardrailsConfig())
    policy = g.policy_for(model="eval", is_local=False)
    texts = [c.text for c in cases]
    filler: list[str] = []
    for loc in ("en_US", "ko_KR"):
        f = Faker(loc)
        f.seed_instance(seed)
        filler += [f.text(max_nb_chars=200) for _ in range(200)]
    msgs: list[list[dict[str, str]]] = []
    for _ in range(messages):
        buf: list[str] = []
        size = 0
        while size < 4000:
            t = rng.choice(filler) if rng.random() < prose else rng.choice(texts)
            buf.append(t)
            size += len(t) + 1
        msgs.append([{"role": "user", "content": "\n".join(buf)[:4000]}])
    for m in msgs[:20]:
        g.check_input(m, policy=policy)
    cpu: list[float] = []
    pii_cpu: list[float] = []
    for m in msgs:
        c0 = time.thread_time()
        g.check_input(m, policy=policy)
        cpu.append((time.thread_time() - c0) * 1000)
        c0 = time.thread_time()
        g.pii.detect(m[0]["content"])
        pii_cpu.append((time.thread_time() - c0) * 1000)
    cpu.sort()
    pii_cpu.sort()
    return {
        "p50": statistics.median(cpu),
        "p95": cpu[int(0.95 * (len(cpu) - 1))],
        "max": cpu[-1],
        "pii_p50": statistics.median(pii_cpu),
        "pii_p95": pii_cpu[int(0.95 * (len(pii_cpu) - 1))],
    }


def compare_detectors(other_root: Path, cases: list[Case], *, messages: int, seed: int) -> str:
    """Interleaved CPU time of this checkout's PII detector and ``other_root``'s on the same messages."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "other_pii", other_root / "gateway" / "guardrails" / "pii.py"
    )
    if spec is None or spec.loader is None:
        raise SystemExit(f"no gateway/guardrails/pii.py under {other_root}")
    other = importlib.util.module_from_spec(spec)
    sys.modules["other_pii"] = other
    spec.loader.exec_module(other)
    rng = random.Random(seed + 3)
    texts = [c.text for c in cases]
    lines = []
    for name, prose in (("every sentence an eval sentence", 0.0), ("80% filler prose", 0.8)):
        filler = [Faker(loc).text(max_nb_chars=200) for loc in ("en_US", "ko_KR") for _ in range(100)]
        msgs = []
        for _ in range(messages):
            buf: list[str] = []
            while sum(len(b) + 1 for b in buf) < 4000:
                buf.append(rng.choice(filler) if rng.random() < prose else rng.choice(texts))
            msgs.append("\n".join(buf)[:4000])
        ours, theirs = PiiDetector(), other.PiiDetector()
        t_ours: list[float] = []
        t_theirs: list[float] = []
        for i, m in enumerate(msgs):
            for det, acc in (
                ((ours, t_ours), (theirs, t_theirs)) if i % 2 else ((theirs, t_theirs), (ours, t_ours))
            ):
                c0 = time.thread_time()
                det.detect(m)
                acc.append((time.thread_time() - c0) * 1000)
        t_ours.sort()
        t_theirs.sort()
        k = int(0.95 * (len(msgs) - 1))
        ours_txt = f"p50 {statistics.median(t_ours):.2f} / p95 {t_ours[k]:.2f} ms"
        theirs_txt = f"p50 {statistics.median(t_theirs):.2f} / p95 {t_theirs[k]:.2f} ms"
        lines.append(f"PII detector, {name}: this checkout {ours_txt}; {other_root} {theirs_txt}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=200, help="values per source (default 200)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--messages", type=int, default=300, help="4,000-character messages timed")
    ap.add_argument("--verbose", "-v", action="store_true", help="list every error")
    ap.add_argument("--markdown", action="store_true", help="print tables as Markdown")
    ap.add_argument("--no-check", action="store_true")
    ap.add_argument("--detector-root", type=Path, default=ROOT, help="checkout whose gateway/ is evaluated")
    ap.add_argument(
        "--compare-root", type=Path, help="also time another checkout's PII detector, interleaved"
    )
    args = ap.parse_args(argv)

    cases = build_cases(args.n, args.seed)
    negatives = build_negatives(args.n, args.seed)
    counts, errors, neg = score(PiiDetector(), cases + negatives)
    md = args.markdown
    fails: list[str] = []
    print(f"positives: {len(cases)} values, hard negatives: {len(negatives)}; seed {args.seed}, n {args.n}")
    print(f"detector: {Path(sys.modules[PiiDetector.__module__].__file__ or '?').parent}")
    print("\n| category | support | precision [95% CI] | recall [95% CI] |" if md else "")
    if md:
        print("|---|---|---|---|")
    for cat in sorted(counts):
        s = counts[cat]
        npos = s.tp + s.fn
        p = s.tp / (s.tp + s.fp) if s.tp + s.fp else 1.0
        r = s.tp / npos if npos else 1.0
        plo, phi = wilson(s.tp, s.tp + s.fp)
        rlo, rhi = wilson(s.tp, npos)
        if not npos:  # a category nothing here is labelled with: only its false positives tell
            row = (cat, 0, f"{s.fp} false positives", "—")
            print(("| {} | {} | {} | {} |" if md else "{:<15} {:>6}  {}  {}").format(*row))
            continue
        row = (cat, npos, f"{p:.3f} [{plo:.3f}, {phi:.3f}]", f"{r:.3f} [{rlo:.3f}, {rhi:.3f}]")
        print(("| {} | {} | {} | {} |" if md else "{:<15} {:>6}  P {}  R {}").format(*row))
        if r < TARGET_RECALL:
            fails.append(f"{cat} recall {r:.3f} < {TARGET_RECALL}")
        if s.tp + s.fp and p < TARGET_PRECISION:
            fails.append(f"{cat} precision {p:.3f} < {TARGET_PRECISION}")
    print("\n| source | found / total | recall |\n|---|---|---|" if md else "\nper source (recall):")
    for cat in sorted(counts):
        for src, (k, tot) in sorted(counts[cat].by_source.items()):
            if tot:
                print(
                    ("| {} | {} | {} |" if md else "  {:<28} {:>12}  {}").format(
                        f"{cat} {src}", f"{k}/{tot}", f"{k / tot:.3f}"
                    )
                )
    print("\n| hard negative | flagged / total |\n|---|---|" if md else "\nhard negatives (any match = FP):")
    for src, (hit, tot) in sorted(neg.items()):
        print(("| {} | {} |" if md else "  {:<20} {:>8}").format(src[4:], f"{hit}/{tot}"))
    lat = latency(cases + negatives, messages=args.messages, seed=args.seed)
    for name, res in (
        ("every sentence an eval sentence", lat),
        ("80% filler prose", latency(cases + negatives, messages=args.messages, seed=args.seed, prose=0.8)),
    ):
        load = os.getloadavg()
        print(
            f"\ncheck_input CPU time on a 4,000-character message, {name} ({args.messages} messages): "
            f"p50 {res['p50']:.2f} ms, p95 {res['p95']:.2f} ms, max {res['max']:.2f} ms; "
            f"PII detector alone p50 {res['pii_p50']:.2f} ms, p95 {res['pii_p95']:.2f} ms "
            f"(load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, {os.cpu_count()} cores)"
        )
    if args.compare_root is not None:
        print(
            "\n"
            + compare_detectors(args.compare_root, cases + negatives, messages=args.messages, seed=args.seed)
        )
    if lat["p95"] > TARGET_P95_MS:
        fails.append(f"p95 {lat['p95']:.2f} ms > {TARGET_P95_MS} ms")
    if args.verbose:
        print("\nerrors:\n  " + "\n  ".join(errors))
    if fails:
        print("\nTARGETS MISSED:\n  " + "\n  ".join(fails))
        return 0 if args.no_check else 1
    print("\nall targets met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
