# ruff: noqa: E501  (hand-written Korean prompt text: long lines are data)
"""Build ``routing.jsonl`` from the hand-written prompt lists in ``src/``.

The hand-written prompts (``src/<intent>.txt``, one ``<tier> <lang> | <text>`` per line) are the core of
the dataset. A smaller set of template combinations (hand-written instructions x hand-written passages /
facts) is added on top for variety: long pasted documents, numbers, informal phrasing. The held-out split
(~25%, stratified by intent and tier) is assigned with a fixed seed, so rebuilding is reproducible:

    python tests/data/routing/build_dataset.py
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEED = 20240611
TEST_SHARE = 0.25

Row = dict[str, str]


def _read_src() -> list[Row]:
    rows: list[Row] = []
    for path in sorted((HERE / "src").glob("*.txt")):
        intent = path.stem
        for raw in path.read_text(encoding="utf-8").splitlines():
            if not raw.strip() or raw.startswith("#"):
                continue
            head, text = raw.split(" | ", 1)
            tier_c, lang = head.split()
            tier = {"c": "cheap", "s": "strong"}[tier_c]
            lang = {"mx": "mixed"}.get(lang, lang)
            rows.append({"text": text.replace("\\n", "\n"), "intent": intent, "tier": tier, "lang": lang,
                         "source": "hand"})
    return rows


# --- template material (hand-written parts, combined for variety) -------------------------------------

PASSAGES_EN = [
    "The museum will reopen on March 3 after a two-year renovation. The new wing adds 2,000 square meters "
    "of gallery space, a rooftop cafe and a children's workshop. Tickets go on sale next week, and entry "
    "will be free on the first Sunday of every month.",
    "Our internal survey shows that 64% of engineers want fewer meetings, 22% want more pairing time, and "
    "most complain that on-call rotations are unevenly distributed. Managers rated team morale 3.1 out of 5, "
    "down from 3.6 last year.",
    "Scientists have found that honeybees can be trained to associate colors with rewards within a few "
    "trials. The study suggests insect learning is more flexible than previously assumed, though the sample "
    "came from a single hive and needs replication.",
    "The city plans to replace 40% of its diesel buses with electric ones by 2028. Funding comes from a "
    "national grant and a small fare increase. Critics say charging infrastructure is behind schedule and "
    "that winter range has not been tested.",
    "Dear customer, due to scheduled maintenance our online banking service will be unavailable on Sunday "
    "from 1am to 5am. Card payments and ATMs are not affected. We apologize for the inconvenience.",
]
PASSAGES_KO = [
    "시립 박물관이 2년간의 리모델링을 마치고 3월 3일 다시 문을 연다. 새 전시관은 2천 제곱미터 규모이며 옥상 카페와 "
    "어린이 체험 공간이 추가됐다. 입장권은 다음 주부터 판매되고 매달 첫째 주 일요일은 무료로 입장할 수 있다.",
    "사내 설문 결과 개발자의 64%가 회의를 줄이길 원했고 22%는 페어 프로그래밍 시간을 늘리길 원했다. 대부분은 "
    "당직 순번이 불공평하다고 답했으며 팀 사기 점수는 작년 3.6점에서 3.1점으로 떨어졌다.",
    "연구진은 꿀벌이 몇 번의 시도만으로 색깔과 보상을 연결하도록 학습할 수 있다는 사실을 밝혀냈다. 곤충의 학습 능력이 "
    "생각보다 유연하다는 의미지만 표본이 한 벌집에서만 나와 추가 검증이 필요하다.",
    "시는 2028년까지 경유 버스의 40%를 전기 버스로 교체할 계획이다. 재원은 국비 지원과 소폭의 요금 인상으로 마련한다. "
    "충전 인프라 구축이 늦어지고 있고 겨울철 주행거리 검증이 안 됐다는 비판도 나온다.",
    "고객님, 정기 점검으로 인해 일요일 새벽 1시부터 5시까지 인터넷 뱅킹 서비스를 이용하실 수 없습니다. 카드 결제와 "
    "ATM은 정상 이용 가능합니다. 이용에 불편을 드려 죄송합니다.",
]
SUM_CHEAP_EN = ["Summarize this in two sentences:\n{p}", "tl;dr?\n\n{p}", "Give me the key points of this text:\n{p}",
                "Can you make this shorter? {p}"]
SUM_CHEAP_KO = ["다음 글 요약해줘:\n{p}", "세줄요약 부탁\n\n{p}", "핵심만 정리해줘 {p}", "이거 짧게 줄여줘\n{p}"]
SUM_STRONG_EN = [
    "Summarize the document below, then critically evaluate its claims, list what evidence is missing, and "
    "propose three follow-up questions a skeptical analyst would ask.\n\n{p}\n\n{p2}",
]
SUM_STRONG_KO = [
    "아래 두 문서를 요약하고 서로 비교해서 주장 간 모순과 근거가 부족한 부분을 분석한 다음, 의사결정자에게 드릴 "
    "권고안을 우선순위와 함께 정리해줘.\n\n{p}\n\n{p2}",
]
TRANS_SENT_EN = ["The meeting starts at 10 sharp.", "Please keep the door closed.", "I lost my wallet on the bus.",
                 "Could you recommend a good restaurant nearby?", "The package was damaged during delivery."]
TRANS_SENT_KO = ["회의는 10시 정각에 시작합니다.", "문을 닫아 주세요.", "버스에서 지갑을 잃어버렸어요.",
                 "근처에 괜찮은 식당 추천해 주실 수 있나요?", "배송 중에 택배가 파손됐어요."]
TRANS_EN = ["Translate into Korean: {s}", "How do you say \"{s}\" in Japanese?", "Translate to Spanish: {s}"]
TRANS_KO = ["영어로 번역해줘: {s}", "\"{s}\" 일본어로 뭐라고 해?", "이 문장 중국어로 바꿔줘 {s}"]
TRANS_KO_FROM_EN = ["한국어로 번역해줘: {s}", "이거 무슨 뜻이야? \"{s}\""]
COUNTRIES = [("France", "프랑스"), ("Japan", "일본"), ("Brazil", "브라질"), ("Egypt", "이집트"),
             ("Canada", "캐나다"), ("Vietnam", "베트남"), ("Kenya", "케냐"), ("Norway", "노르웨이")]
GEN_EN = ["What's the capital of {c}?", "What language do people speak in {c}?", "What food is {c} famous for?"]
GEN_KO = ["{c}의 수도는 어디야?", "{c}에서는 무슨 언어 써?", "{c} 대표 음식이 뭐야?"]
GREET_EN = ["hi", "hello", "hey", "good morning", "yo"]
GREET_KO = ["안녕", "안녕하세요", "ㅎㅇ", "하이", "좋은 아침"]
GREET_TAIL_EN = ["how's it going?", "hope you're well!", "nice to see you", "what's new?"]
GREET_TAIL_KO = ["잘 지냈어?", "오늘 기분 어때?", "반가워요 ㅎㅎ", "뭐하고 있었어?"]
SNIPPETS = [
    "```python\nnums = [3, 1, 2]\nnums.sort(reverse=True)\nprint(nums[0])\n```",
    "```js\nconst xs = [1, 2, 3].map(x => x * 2).filter(x => x > 2);\nconsole.log(xs);\n```",
    "```sql\nSELECT name, COUNT(*) FROM orders GROUP BY name HAVING COUNT(*) > 5;\n```",
    "```bash\nfind . -name '*.log' -mtime +7 -delete\n```",
]
CODE_CHEAP_EN = ["What does this code do?\n{s}", "Explain this snippet briefly:\n{s}"]
CODE_CHEAP_KO = ["이 코드 뭐하는 거야?\n{s}", "이거 간단히 설명해줘\n{s}"]


def _templated(rng: random.Random) -> list[Row]:
    rows: list[Row] = []

    def add(text: str, intent: str, tier: str, lang: str) -> None:
        rows.append({"text": text, "intent": intent, "tier": tier, "lang": lang, "source": "template"})

    for i, p in enumerate(PASSAGES_EN):
        add(SUM_CHEAP_EN[i % len(SUM_CHEAP_EN)].format(p=p), "summarization", "cheap", "en")
        add(SUM_STRONG_EN[0].format(p=p, p2=PASSAGES_EN[(i + 1) % len(PASSAGES_EN)]), "summarization",
            "strong", "en")
    for i, p in enumerate(PASSAGES_KO):
        add(SUM_CHEAP_KO[i % len(SUM_CHEAP_KO)].format(p=p), "summarization", "cheap", "ko")
        add(SUM_STRONG_KO[0].format(p=p, p2=PASSAGES_KO[(i + 2) % len(PASSAGES_KO)]), "summarization",
            "strong", "ko")
        # Korean instruction on an English document (mixed)
        add(f"이 글 한국어로 요약해줘\n\n{PASSAGES_EN[i]}", "summarization", "cheap", "mixed")
    for i, s in enumerate(TRANS_SENT_EN):
        add(TRANS_EN[i % len(TRANS_EN)].format(s=s), "translation", "cheap", "en")
        add(TRANS_KO_FROM_EN[i % len(TRANS_KO_FROM_EN)].format(s=s), "translation", "cheap", "mixed")
    for i, s in enumerate(TRANS_SENT_KO):
        add(TRANS_KO[i % len(TRANS_KO)].format(s=s), "translation", "cheap", "ko")
    # long translation jobs: a pasted passage with strict constraints
    for i in range(3):
        add("Translate the following notice into Korean, keeping a formal register, the exact numbers and "
            f"dates, and a glossary of any terms you adapted:\n\n{PASSAGES_EN[i]}\n\n{PASSAGES_EN[i + 1]}",
            "translation", "strong", "en")
        add("다음 안내문을 영어와 일본어로 번역해줘. 공식적인 어조를 유지하고 숫자와 날짜는 정확히, 의역한 표현은 "
            f"용어집으로 따로 정리해줘.\n\n{PASSAGES_KO[i]}\n\n{PASSAGES_KO[i + 1]}", "translation", "strong", "ko")
    for en, ko in COUNTRIES:
        add(rng.choice(GEN_EN).format(c=en), "general", "cheap", "en")
        add(rng.choice(GEN_KO).format(c=ko), "general", "cheap", "ko")
    for _ in range(10):
        add(f"{rng.choice(GREET_EN)} {rng.choice(GREET_TAIL_EN)}", "small_talk", "cheap", "en")
        add(f"{rng.choice(GREET_KO)} {rng.choice(GREET_TAIL_KO)}", "small_talk", "cheap", "ko")
    for _ in range(8):
        a, b = rng.randint(11, 99), rng.randint(11, 999)
        add(rng.choice([f"What is {a}% of {b}?", f"what's {a} times {b}", f"{b} divided by {a}?"]),
            "reasoning", "cheap", "en")
        add(rng.choice([f"{b}의 {a}%는 얼마야?", f"{a} 곱하기 {b}는?", f"{b} 나누기 {a} 얼마야"]), "reasoning",
            "cheap", "ko")
    for _ in range(4):
        a, b, c = rng.randint(2, 9), rng.randint(10, 60), rng.randint(3, 12)
        add(f"A tank is filled by pipe A in {a} hours and emptied by pipe B in {b} hours, while pipe C fills "
            f"it in {c} hours. Starting empty with all pipes open, when is it full? Show each step and verify.",
            "reasoning", "strong", "en")
        add(f"물탱크를 A관은 {a}시간, C관은 {c}시간에 채우고 B관은 {b}시간에 비운다. 빈 상태에서 세 관을 모두 열면 "
            "언제 가득 차는지 단계별로 풀고 검산까지 해줘.", "reasoning", "strong", "ko")
    for i, s in enumerate(SNIPPETS):
        add(CODE_CHEAP_EN[i % 2].format(s=s), "coding", "cheap", "en")
        add(CODE_CHEAP_KO[i % 2].format(s=s), "coding", "cheap", "ko")
    return rows


def build() -> list[Row]:
    rng = random.Random(SEED)
    rows = _read_src() + _templated(rng)
    seen: set[str] = set()
    unique: list[Row] = []
    for row in rows:
        if row["text"] not in seen:
            seen.add(row["text"])
            unique.append(row)
    groups: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, row in enumerate(unique):
        groups[(row["intent"], row["tier"])].append(i)
    test_idx: set[int] = set()
    for key in sorted(groups):
        idx = groups[key][:]
        rng.shuffle(idx)
        test_idx.update(idx[: round(len(idx) * TEST_SHARE)])
    for i, row in enumerate(unique):
        row["split"] = "test" if i in test_idx else "train"
    return unique


def main() -> None:
    rows = build()
    out = HERE / "routing.jsonl"
    with out.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"wrote {len(rows)} rows to {out}")


if __name__ == "__main__":
    main()
