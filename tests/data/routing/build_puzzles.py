# ruff: noqa: E501  (hand-written Korean prompt text: long lines are data)
"""Build ``puzzles.jsonl``: short riddles, logic puzzles and maths word problems (issue #21, item 3).

Short reasoning prompts without "step by step" cues (``"수수께끼: …"``, "A is taller than B … who is
shortest?") were labelled ``general`` and routed to the cheap tier. Every prompt here is written for this
project (hand-written riddles, and hand-written templates filled with seeded names and numbers); none comes
from a public benchmark, and none of the reserved evaluation sets of issue #21 was looked at.

Families (``source`` = ``puzzle/<family>``), English and Korean:

* ``riddle``: riddles and nonsense-quiz questions (hand-written);
* ``ordering``: who is tallest / oldest / finished last, from pairwise comparisons;
* ``truth``: liars and truth-tellers;
* ``age``: age word problems; ``motion``: speed / work / mixing word problems;
* ``count``: short counting and probability questions; ``sequence``: next term of a sequence;
* ``calendar``: weekday / date logic — held out entirely (never trained on);
* ``negative``: cheap look-alikes (asking *for* a riddle, trivia about heights and ages).

Split: the ``calendar`` family is all ``test``; in every other family ~30 % of the rows (seeded) are
``test``. Rebuilding is reproducible::

    python tests/data/routing/build_puzzles.py
"""

from __future__ import annotations

import json
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEED = 20261207
TEST_SHARE = 0.3
HELD_OUT_FAMILIES = ("calendar",)

Row = dict[str, str]

RIDDLES_EN = [
    "Riddle: the more you take, the more you leave behind. What am I?",
    "What has keys but can't open a single lock?",
    "I have a neck but no head and I wear a cap. What am I?",
    "Riddle: what gets wetter the more it dries?",
    "What can travel around the world while staying in a corner?",
    "A man pushes his car to a hotel and tells the owner he's bankrupt. Why?",
    "What has one eye but cannot see?",
    "Riddle time: I'm tall when I'm young and short when I'm old. What am I?",
    "What breaks as soon as you say its name?",
    "Two fathers and two sons go fishing and each catches one fish, yet only three fish are caught. How?",
    "What comes once in a minute, twice in a moment, but never in a thousand years?",
    "I speak without a mouth and hear without ears. What am I?",
    "A rooster lays an egg on the peak of a roof. Which side does it roll down?",
    "What month has 28 days?",
    "Brain teaser: a doctor's brother died but the dead man had no brother. How is that possible?",
    "What can you catch but never throw?",
    "If you have me you want to share me, and if you share me you no longer have me. What am I?",
    "Riddle: what has many teeth but can't bite?",
]
RIDDLES_KO = [
    "수수께끼: 먹으면 먹을수록 배가 고파지는 건 뭘까?",
    "수수께끼 풀어봐. 세상에서 가장 빠른 새는?",
    "문제: 씻을수록 더러워지는 물건은 뭐게?",
    "넌센스 퀴즈: 깨뜨리면 칭찬받는 건?",
    "수수께끼: 머리는 있는데 생각을 못 하고 발은 없는데 걸어 다니는 것은?",
    "이 수수께끼 답이 뭐야? 들어갈 땐 하나인데 나올 땐 둘이 되는 것",
    "입은 있어도 말을 못 하고 강은 있어도 물이 없는 것은?",
    "수수께끼: 올라갈 땐 있는데 내려올 땐 없는 건?",
    "퀴즈: 가만히 있으면 줄어들고 움직이면 더 줄어드는 것은 뭘까?",
    "어떤 사람이 비를 맞으며 걸었는데 머리카락이 하나도 젖지 않았어. 왜일까?",
    "넌센스: 아빠가 넘어지면? 이거 답 알려줘",
    "수수께끼: 자기 이름을 부르면 사라지는 것은?",
    "문제 낼게. 방에 불을 켜지 않고도 책을 읽을 수 있었던 이유는?",
    "수수께끼야. 보이지는 않는데 잡을 수는 있고 던질 수는 없는 것?",
    "두 아버지와 두 아들이 낚시를 가서 각자 한 마리씩 잡았는데 물고기는 세 마리뿐이야. 어떻게 된 걸까?",
    "알쏭달쏭 문제: 닭이 지붕 꼭대기에서 알을 낳으면 어느 쪽으로 굴러갈까?",
    "수수께끼 하나: 한 달 중에 28일이 있는 달은 몇 개일까?",
    "맞혀봐: 손님이 오면 나가고 손님이 가면 들어오는 것은?",
]
NEG_EN = [
    "Tell me a fun riddle for kids.",
    "Can you give me three easy riddles for a birthday party?",
    "What is a riddle?",
    "Recommend a book of logic puzzles for beginners.",
    "How tall is Mount Everest?",
    "How old is the Eiffel Tower?",
    "Who is the tallest basketball player ever?",
    "Write a short riddle about the moon.",
    "What's a good brain teaser app?",
    "What day of the week was it yesterday if today is Friday?",
]
NEG_KO = [
    "재미있는 수수께끼 하나 내줘",
    "아이들이랑 할 만한 쉬운 넌센스 퀴즈 추천해줘",
    "수수께끼가 영어로 뭐야?",
    "초보자용 논리 퍼즐 책 추천해줘",
    "에베레스트산 높이가 얼마야?",
    "남산타워는 언제 지어졌어?",
    "세계에서 제일 키 큰 사람은 누구야?",
    "달에 대한 짧은 수수께끼 하나 만들어줘",
    "두뇌 게임 앱 추천 좀",
    "오늘이 금요일이면 어제는 무슨 요일이야?",
]

NAMES_EN = ["Alex", "Ben", "Chloe", "Dana", "Eli", "Fay", "Gus", "Hana", "Ivan", "Jia", "Kim", "Leo"]
NAMES_KO = ["민수", "지영", "준호", "서연", "하늘", "도윤", "예린", "태민", "수아", "현우", "지호", "나래"]
ORDER_EN = [("taller than", "Who is the shortest?", "Who is the tallest?"),
            ("older than", "Who is the youngest?", "Who is the oldest?"),
            ("faster than", "Who is the slowest?", "Who finished first?"),
            ("heavier than", "Who is the lightest?", "Who is the heaviest?")]
ORDER_KO = [("보다 키가 크고", "보다 커", "누가 제일 작아?", "누가 제일 커?"),
            ("보다 나이가 많고", "보다 나이가 많아", "누가 막내야?", "누가 제일 나이가 많아?"),
            ("보다 빨리 달리고", "보다 빨라", "누가 꼴찌야?", "누가 1등이야?"),
            ("보다 무겁고", "보다 무거워", "누가 제일 가벼워?", "누가 제일 무거워?")]


def _ordering(rng: random.Random, lang: str) -> list[str]:
    out: list[str] = []
    for k in range(14):
        n = 3 + k % 2
        if lang == "en":
            a = rng.sample(NAMES_EN, n)
            rel, q1, q2 = ORDER_EN[k % 4]
            facts = [f"{a[i]} is {rel} {a[i + 1]}" for i in range(n - 1)]
            rng.shuffle(facts)
            out.append(f"{', and '.join(facts)}. {q1 if k % 3 else q2}")
        else:
            a = rng.sample(NAMES_KO, n)
            rel, last, q1, q2 = ORDER_KO[k % 4]
            order = list(range(n - 1))
            rng.shuffle(order)
            facts = [f"{a[i]}는 {a[i + 1]}" for i in order]
            text = " ".join(f"{f}{rel}" for f in facts[:-1]) + f" {facts[-1]}{last}."
            out.append(f"{text.strip()} {q1 if k % 3 else q2}")
    return out


def _truth(rng: random.Random, lang: str) -> list[str]:
    out: list[str] = []
    for _ in range(10):
        if lang == "en":
            a, b, c = rng.sample(NAMES_EN, 3)
            out.append(rng.choice([
                f"{a} always lies and {b} always tells the truth. One of them says 'I am the liar.' Who said it?",
                f"{a} says {b} is lying. {b} says {c} is lying. {c} says both {a} and {b} are lying. Who tells the truth?",
                f"On an island knights always tell the truth and knaves always lie. {a} says '{b} and I are the same kind.' {b} says '{a} is a knave.' What are they?",
                f"Exactly one of {a}, {b} and {c} broke the vase. {a}: 'It was {b}.' {b}: 'It wasn't me.' {c}: 'It wasn't {a}.' Only one is telling the truth. Who broke it?",
            ]))
        else:
            a, b, c = rng.sample(NAMES_KO, 3)
            out.append(rng.choice([
                f"{a}는 항상 거짓말을 하고 {b}는 항상 진실만 말해. 둘 중 한 명이 '나는 거짓말쟁이야'라고 했다면 누가 한 말이야?",
                f"{a}는 {b}가 거짓말한다고 하고 {b}는 {c}가 거짓말한다고 해. {c}는 {a}와 {b} 둘 다 거짓말쟁이래. 진실을 말하는 사람은?",
                f"기사는 항상 참말, 건달은 항상 거짓말을 해. {a}: '{b}와 나는 같은 부류야.' {b}: '{a}는 건달이야.' 둘은 각각 뭐야?",
                f"{a}, {b}, {c} 중 한 명이 꽃병을 깼어. {a}: '{b}가 깼어.' {b}: '난 아니야.' {c}: '{a}는 아니야.' 한 명만 진실을 말한다면 범인은?",
            ]))
    return out


def _age(rng: random.Random, lang: str) -> list[str]:
    out: list[str] = []
    for _ in range(10):
        m, s = rng.randint(3, 5), rng.randint(4, 12)
        y = rng.randint(4, 15)
        a, b = rng.sample(NAMES_EN if lang == "en" else NAMES_KO, 2)
        if lang == "en":
            out.append(rng.choice([
                f"{a} is {m} times as old as {b}. In {y} years {a} will be twice as old as {b}. How old is {b} now?",
                f"The sum of {a}'s and {b}'s ages is {s * (m + 1)}. {a} is {m} times {b}'s age. How old is each?",
                f"{y} years ago {a} was {m} times as old as {b}; now {a} is twice as old. How old are they?",
            ]))
        else:
            out.append(rng.choice([
                f"{a}의 나이는 {b}의 {m}배야. {y}년 뒤에는 {a}가 {b}의 2배가 된대. {b}는 지금 몇 살이야?",
                f"{a}와 {b} 나이를 합하면 {s * (m + 1)}살이고 {a}는 {b}의 {m}배야. 각자 몇 살이야?",
                f"{y}년 전에 {a}는 {b}보다 {m}배 나이가 많았는데 지금은 2배야. 둘은 지금 몇 살이야?",
            ]))
    return out


def _motion(rng: random.Random, lang: str) -> list[str]:
    out: list[str] = []
    for _ in range(10):
        v1, v2, d = rng.randint(40, 90), rng.randint(50, 110), rng.randint(150, 600)
        h1, h2 = rng.randint(2, 9), rng.randint(3, 12)
        if lang == "en":
            out.append(rng.choice([
                f"Two trains start {d} km apart and head toward each other at {v1} and {v2} km/h. When and where do they meet?",
                f"A can paint a fence in {h1} hours and B in {h2} hours. Working together, how long do they take?",
                f"A snail climbs {h1 + 1} m up a {d // 10} m well each day and slips back {h1 - 1} m each night. On which day does it get out?",
                f"How many liters of 10% salt water must be added to {h2} liters of 40% salt water to get 25%?",
            ]))
        else:
            out.append(rng.choice([
                f"두 기차가 {d}km 떨어진 곳에서 시속 {v1}km, {v2}km로 마주 보고 출발해. 언제 어디서 만나?",
                f"A는 울타리를 {h1}시간, B는 {h2}시간에 칠해. 둘이 같이 하면 몇 시간 걸려?",
                f"달팽이가 깊이 {d // 10}m 우물에서 낮에 {h1 + 1}m 올라가고 밤에 {h1 - 1}m 미끄러져. 며칠째에 나올까?",
                f"40% 소금물 {h2}리터에 10% 소금물을 몇 리터 넣어야 25%가 돼?",
            ]))
    return out


def _count(rng: random.Random, lang: str) -> list[str]:
    out: list[str] = []
    for _ in range(10):
        n, k = rng.randint(5, 9), rng.randint(2, 4)
        if lang == "en":
            out.append(rng.choice([
                f"In a room of {n} people everyone shakes hands once with everyone else. How many handshakes?",
                f"How many {k}-digit numbers have digits that add up to {n}?",
                f"I roll two dice. What's the chance the sum is {n}?",
                f"A farmer has chickens and rabbits: {n * 3} heads and {n * 8} legs. How many rabbits?",
                f"How many ways can {n} books be put on a shelf if two of them must stay together?",
            ]))
        else:
            out.append(rng.choice([
                f"{n}명이 서로 한 번씩 악수하면 악수는 모두 몇 번이야?",
                f"각 자리 숫자의 합이 {n}인 {k}자리 수는 몇 개야?",
                f"주사위 두 개를 던져서 합이 {n}이 나올 확률은?",
                f"닭과 토끼가 모두 {n * 3}마리이고 다리는 {n * 8}개야. 토끼는 몇 마리?",
                f"책 {n}권을 꽂는데 두 권은 꼭 붙어 있어야 해. 경우의 수는?",
            ]))
    return out


def _sequence(rng: random.Random, lang: str) -> list[str]:
    out: list[str] = []
    for _ in range(10):
        a, d = rng.randint(1, 9), rng.randint(2, 5)
        kind = rng.randrange(3)
        if kind == 0:
            seq = [a + d * i * (i + 1) // 2 for i in range(5)]
        elif kind == 1:
            seq = [a * d**i + i for i in range(5)]
        else:
            x, y = a, a + d
            seq = [x, y]
            for _ in range(3):
                x, y = y, x + y
                seq.append(y)
        s = ", ".join(map(str, seq))
        if lang == "en":
            out.append(rng.choice([f"What comes next: {s}, ?", f"Find the pattern and the next number: {s}",
                                   f"{s}, ... what's the next term and why?"]))
        else:
            out.append(rng.choice([f"다음에 올 수는? {s}, ?", f"규칙 찾아서 다음 숫자 맞혀봐: {s}",
                                   f"{s} 다음 수가 뭐야? 이유도"]))
    return out


DAYS_EN = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
DAYS_KO = ["월요일", "화요일", "수요일", "목요일", "금요일", "토요일", "일요일"]


def _calendar(rng: random.Random, lang: str) -> list[str]:
    out: list[str] = []
    for _ in range(10):
        d = rng.randrange(7)
        n = rng.randint(20, 400)
        if lang == "en":
            out.append(rng.choice([
                f"If the day before yesterday was the day after {DAYS_EN[d]}, what day is tomorrow?",
                f"If {n} days ago was a {DAYS_EN[d]}, what day was it {n // 3} days before yesterday?",
                f"When the day after tomorrow is {DAYS_EN[d]}, what was the day three days before yesterday?",
            ]))
        else:
            out.append(rng.choice([
                f"그저께가 {DAYS_KO[d]} 다음 날이었다면 내일은 무슨 요일이야?",
                f"{n}일 전이 {DAYS_KO[d]}이었다면 어제의 {n // 3}일 전은 무슨 요일이야?",
                f"모레가 {DAYS_KO[d]}이라면 어제의 사흘 전은 무슨 요일이었어?",
            ]))
    return out


def build() -> list[Row]:
    rng = random.Random(SEED)
    rows: list[Row] = []

    def add(texts: list[str], family: str, lang: str, intent: str = "reasoning", tier: str = "strong") -> None:
        for text in texts:
            rows.append({"text": text, "intent": intent, "tier": tier, "lang": lang,
                         "source": f"puzzle/{family}"})

    add(RIDDLES_EN, "riddle", "en")
    add(RIDDLES_KO, "riddle", "ko")
    add(NEG_EN, "negative", "en", "general", "cheap")
    add(NEG_KO, "negative", "ko", "general", "cheap")
    for family, make in (("ordering", _ordering), ("truth", _truth), ("age", _age), ("motion", _motion),
                         ("count", _count), ("sequence", _sequence), ("calendar", _calendar)):
        for lang in ("en", "ko"):
            add(make(rng, lang), family, lang)
    seen: set[str] = set()
    unique = [r for r in rows if not (r["text"] in seen or seen.add(r["text"]))]  # type: ignore[func-returns-value]
    groups: dict[tuple[str, str], list[int]] = {}
    for i, row in enumerate(unique):
        groups.setdefault((row["source"], row["lang"]), []).append(i)
    test: set[int] = set()
    for key in sorted(groups):
        idx = groups[key][:]
        if key[0].removeprefix("puzzle/") in HELD_OUT_FAMILIES:
            test.update(idx)
            continue
        rng.shuffle(idx)
        test.update(idx[: round(len(idx) * TEST_SHARE)])
    for i, row in enumerate(unique):
        row["split"] = "test" if i in test else "train"
    return unique


def main() -> None:
    rows = build()
    out = HERE / "puzzles.jsonl"
    with out.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    n_test = sum(r["split"] == "test" for r in rows)
    print(f"wrote {len(rows)} rows ({n_test} held out) to {out}")


if __name__ == "__main__":
    main()
