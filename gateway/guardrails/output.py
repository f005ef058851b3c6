"""Output guard: PII/secret/deny-pattern filtering of the answer, whole or streamed.

Detection runs on the model's raw text (placeholders such as ``<EMAIL_1>`` are
not PII), values that came from the request itself are ignored (the user's own
data echoed back is not a leak), then placeholders are restored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gateway.config.guardrails import DenyPattern, OutputAction, OutputPolicy
from gateway.guardrails.masking import MaskTable, StreamUnmasker
from gateway.guardrails.pii import PLACEHOLDER_TAG, PiiDetector, PiiMatch
from gateway.guardrails.verdict import OutputVerdict

_SECRET_PREFIX_AT_END = re.compile(
    r"(?:eyJ[A-Za-z0-9_\-.]*|sk-[A-Za-z0-9_\-]*|gh[pousr]_[A-Za-z0-9]*|github_pat_\w*|(?:AKIA|ASIA)[0-9A-Z]*|"
    r"-----BEGIN[^\n]*|xox[a-z]-[\w\-]*|AIza[\w\-]*)\Z"
)
_KEY_END = re.compile(r"-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----")
MAX_SECRET_HOLD = 1024
_CONTEXT = 48
# Whitespace that no built-in detector's match can contain: inside a match, whitespace only ever follows a
# digit, ``)`` (phone groups, ``(0) 10``, ``(415) 555``), ``-``/``–``/``.`` (RRN ``900101 - 1234567``,
# phone ``555 . 0100``), an upper-case letter (IBAN groups ``GB29 NWBK 6016``) or a phone extension mark
# (``x``, ``ext.``, ``ext``, ``extn``, ``extension``, ``#``, ``내선``); a PEM header is held by
# ``_SECRET_PREFIX_AT_END``.
_HARD_BREAK = r"(?<![0-9A-Z)\-–.#x])(?<!ext)(?<!extn)(?<!extension)(?<!내선)\s"
_LAST_BREAK = re.compile(rf"(?s:.*){_HARD_BREAK}")
_ANY_BREAK = re.compile(_HARD_BREAK)
_DIGIT = re.compile(r"[0-9]")
# Text after a match that a validator reads (a passport or licence word: up to 44 chars after the number's
# end, card/order/barcode words 24, IPv4 version cue 25, bank keyword 15).
_RIGHT_CONTEXT = 48


@dataclass(frozen=True, slots=True)
class _Hit:
    start: int
    end: int
    kind: str  # pii category or "deny:<name>"
    action: OutputAction
    replacement: str
    open_key: bool = False  # unterminated private key block


class OutputFilter:
    def __init__(
        self,
        detector: PiiDetector,
        policy: OutputPolicy,
        masks: MaskTable,
        deny: list[tuple[DenyPattern, re.Pattern[str]]],
    ) -> None:
        self._detector = detector
        self._policy = policy
        self._masks = masks
        self._deny = deny

    @property
    def active(self) -> bool:
        """False when nothing can ever be found (the output policy is off)."""
        return self._policy.enabled

    @property
    def built_in_only(self) -> bool:
        """Only the built-in detectors run (no deny patterns, whose matches may span anything)."""
        return not self._deny

    def find(self, text: str) -> list[_Hit]:
        hits: list[_Hit] = []
        if not self._policy.enabled:
            return hits
        for m in self._detector.detect(text):
            if self._masks.is_known(m):
                continue
            hits.append(self._pii_hit(m))
        for dp, rx in self._deny:
            for dm in rx.finditer(text):
                if dm.end() > dm.start():
                    hits.append(_Hit(dm.start(), dm.end(), "deny:" + dp.name, dp.action, "[REDACTED]"))
        hits.sort(key=lambda h: (h.start, -h.end))
        return hits

    def _pii_hit(self, m: PiiMatch) -> _Hit:
        open_key = (
            m.category == "secret" and m.value.startswith("-----BEGIN") and _KEY_END.search(m.value) is None
        )
        return _Hit(
            m.start,
            m.end,
            m.category,
            self._policy.action_for(m.category),
            f"[REDACTED_{PLACEHOLDER_TAG[m.category]}]",
            open_key,
        )

    def apply(self, text: str, hits: list[_Hit], verdict: OutputVerdict) -> str:
        """Record hits in the verdict and redact; hits must lie within ``text``."""
        out: list[str] = []
        pos = 0
        for h in hits:
            if h.kind.startswith("deny:"):
                verdict.deny_matched.add(h.kind[5:])
                reason = "output_denied_pattern"
            else:
                verdict.pii_detected.add(h.kind)
                reason = "output_pii_blocked"
            verdict.escalate(h.action, reason)
            verdict.note(h.kind, h.action)
            if h.action == "flag" and not h.kind.startswith("deny:"):
                verdict.flagged.add(h.kind)
            if h.action in ("redact", "block") and h.start >= pos:
                out.append(text[pos : h.start])
                out.append(h.replacement)
                pos = h.end
                if not h.kind.startswith("deny:"):
                    verdict.redacted.add(h.kind)
        out.append(text[pos:])
        return "".join(out)

    def unmask(self, text: str, verdict: OutputVerdict) -> str:
        if not self._policy.unmask:
            return text
        restored = self._masks.unmask(text)
        if restored != text:
            verdict.unmasked += 1
        return restored


class StreamOutputGuard:
    """Incremental output guard over a bounded held-back window.

    ``feed(chunk)`` returns the text safe to emit now; at most ``window`` raw
    characters are held back (plus a partial placeholder, and up to
    ``MAX_SECRET_HOLD`` chars while a token looks like the start of a secret).
    With only the built-in detectors (no deny patterns) far less is held: the text
    after the last whitespace no match can contain (``_HARD_BREAK``), and a run with
    a digit until ``_RIGHT_CONTEXT`` chars follow it; in English that is the last
    word, so tokens flow one behind the model instead of ``window`` chars behind.
    With the output policy off nothing is held but a partial placeholder.
    When ``verdict.blocked`` becomes true, nothing more is emitted and the
    gateway should end the stream with an error.
    """

    def __init__(
        self, flt: OutputFilter, masks: MaskTable, *, policy: OutputPolicy, window: int = 64
    ) -> None:
        self._flt = flt
        self._unmasker: StreamUnmasker | None = StreamUnmasker(masks) if policy.unmask else None
        self._window = max(1, window)
        self._passthrough = not flt.active
        self._by_words = flt.built_in_only
        self._buf = ""
        self._ctx = ""
        self._in_key = False
        self._finished = False
        self.verdict = OutputVerdict()

    @property
    def held(self) -> int:
        return len(self._buf) + (self._unmasker.held if self._unmasker else 0)

    def feed(self, chunk: str) -> str:
        if self.verdict.blocked or self._finished or not chunk:
            return ""
        self._buf += chunk
        return self._process(final=False)

    def finish(self) -> str:
        if self._finished:
            return ""
        self._finished = True
        if self.verdict.blocked:
            return ""
        out = self._process(final=True)
        if self.verdict.blocked:
            return ""
        if self._unmasker is not None:
            out += self._unmasker.finish()
        return out

    def _emit(self, raw: str) -> str:
        if self._unmasker is None:
            return raw
        out = self._unmasker.feed(raw)
        if out != raw:
            self.verdict.unmasked += 1
        return out

    def _pending_start(self, scan: str, off: int) -> int:
        """Where the text that may still belong to (or decide) an unfinished match begins."""
        n = len(scan)
        last = _LAST_BREAK.match(scan, off)
        tail = last.end() if last is not None else off
        near = max(off, n - _RIGHT_CONTEXT - 1)  # a digit run ending after this needs more text
        if near < tail:
            seg = _LAST_BREAK.match(scan, off, near)
            digit = _DIGIT.search(scan, seg.end() if seg is not None else off, tail)
            if digit is not None:
                run = _LAST_BREAK.match(scan, off, digit.start())
                return run.end() if run is not None else off
        return tail

    def _process(self, *, final: bool) -> str:
        if self._passthrough:
            text, self._buf = self._buf, ""
            return self._emit(text)
        if (
            not final
            and not self._in_key
            and len(self._buf) <= self._window
            and not (self._by_words and _ANY_BREAK.search(self._buf))
        ):
            return ""  # all of it is still inside the held-back window: a scan could emit nothing
        if self._in_key:
            m = _KEY_END.search(self._buf)
            if m is None:
                self._buf = self._buf[-60:]
                return ""
            # the END line stays as (never emitted) context, so what follows is scanned as in the whole text
            self._ctx = self._buf[: m.end()][-_CONTEXT:]
            self._buf = self._buf[m.end() :]
            self._in_key = False
        ctx = self._ctx
        scan = ctx + self._buf
        off = len(ctx)
        hits = [h for h in self._flt.find(scan) if h.start >= off]
        n = len(scan)
        cut = n if final else max(off, n - self._window)
        if not final and self._by_words:
            cut = max(cut, self._pending_start(scan, off))
        if not final:
            for h in hits:
                if h.start < cut < h.end and not h.open_key and h.action in ("redact", "block"):
                    cut = h.start
            pm = _SECRET_PREFIX_AT_END.search(scan)
            if pm is not None and off <= pm.start() < cut and n - pm.start() <= MAX_SECRET_HOLD:
                cut = pm.start()
        open_key: _Hit | None = None
        emit_hits: list[_Hit] = []
        for h in hits:
            if h.open_key and h.start < cut and not final:
                if h.action in ("redact", "block"):
                    open_key = h
                    break
                self._flt.apply(scan, [h], self.verdict)  # flag/allow: record, keep streaming
                continue
            if h.end <= cut:
                emit_hits.append(h)
        if open_key is not None:
            cut = open_key.start
        raw = scan[:cut]
        # hits start at or after ``off`` so the context prefix is unchanged by redaction
        text = self._flt.apply(raw, emit_hits, self.verdict)[off:] if emit_hits else raw[off:]
        if open_key is not None:
            self._flt.apply(scan, [open_key], self.verdict)
            text += open_key.replacement
            self._in_key = True
            self._buf = scan[-60:]
            self._ctx = ""
        else:
            self._buf = scan[cut:]
            self._ctx = raw[-_CONTEXT:]
        if self.verdict.blocked:
            return ""
        return self._emit(text)
