"""Request-scoped placeholder table and (streaming) un-masking.

A ``MaskTable`` lives for one request. ``mask`` hands out typed placeholders
(``<EMAIL_1>``, ``<PHONE_2>``...) keyed by the value's canonical form, so the
same value gets the same placeholder in every message of the request (also when
written with and without separators). ``unmask`` restores the first-seen
original spelling. Values that were detected but passed through unmasked are
remembered too (``note_passed``) so the output guard does not flag the user's
own data echoed back. The table never appears in logs (``repr`` hides values).

Server tools (issue #22) use the same table: ``for_destination`` is the view a tool's arguments
are restored with (only the categories the tool's own policy lets through), and ``adopt`` takes
a tool result masked by the input guard into this table — the user's own values get their
request placeholder back, new values get new numbers (never one already in use), and they are
restored in the answer only when ``in_answer`` says so (docs/tools.md, "PII and tools").
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from gateway.guardrails.pii import PLACEHOLDER_TAG, PiiMatch

_PLACEHOLDER = re.compile(r"<([A-Z]+)_(\d{1,6})>")
MAX_PLACEHOLDER_LEN = 2 + max(len(t) for t in PLACEHOLDER_TAG.values()) + 1 + 6
CATEGORY_OF_TAG = {tag: category for category, tag in PLACEHOLDER_TAG.items()}
_SHIELDED = re.compile("\ue000([A-Z]+)_(\\d{1,6})\ue001")


class MaskTable:
    __slots__ = ("_by_key", "_counters", "_passed", "_tool_keys", "_tool_values", "_values")

    def __init__(self) -> None:
        self._by_key: dict[str, str] = {}
        self._values: dict[str, str] = {}
        self._counters: dict[str, int] = {}
        self._passed: set[str] = set()
        self._tool_keys: dict[str, str] = {}
        """Canonical key → placeholder, for values first seen in a tool result."""
        self._tool_values: dict[str, str] = {}
        """Placeholder → value for tool-result values the answer does not restore."""

    def __repr__(self) -> str:
        return f"MaskTable({len(self._values)} placeholders)"

    def __len__(self) -> int:
        return len(self._values)

    def __bool__(self) -> bool:
        return True

    def placeholder_for(self, m: PiiMatch) -> str:
        key = m.key
        ph = self._by_key.get(key)
        if ph is None:
            tag = PLACEHOLDER_TAG[m.category]
            n = self._counters.get(tag, 0) + 1
            self._counters[tag] = n
            ph = f"<{tag}_{n}>"
            self._by_key[key] = ph
            self._values[ph] = m.value
        return ph

    def note_passed(self, m: PiiMatch) -> None:
        self._passed.add(m.key)

    def is_known(self, m: PiiMatch) -> bool:
        """True if this value came from the request (masked or passed)."""
        return m.key in self._passed or m.key in self._by_key

    def mapping(self) -> dict[str, str]:
        """placeholder -> original value (a copy)."""
        return dict(self._values)

    def json_escaped(self) -> MaskTable:
        """A view restoring JSON-string-escaped values (for tool call ``arguments``, which are JSON).

        Shares the request's known values, so echoes are still recognised by the output guard.
        """
        view = MaskTable()
        view._by_key = self._by_key
        view._counters = self._counters
        view._passed = self._passed
        view._values = {ph: json.dumps(value, ensure_ascii=False)[1:-1] for ph, value in self._values.items()}
        return view

    def for_destination(self, allowed: Callable[[str], bool]) -> MaskTable:
        """A view restoring, JSON-escaped, only placeholders whose PII category ``allowed`` accepts
        (a server tool's arguments: the tool's policy decides what it may see). Values that came
        from earlier tool results are restorable here too."""
        view = MaskTable()
        view._by_key = self._by_key
        view._counters = self._counters
        view._passed = self._passed
        everything = {**self._tool_values, **self._values}
        view._values = {
            ph: json.dumps(value, ensure_ascii=False)[1:-1]
            for ph, value in everything.items()
            if allowed(_category(ph))
        }
        return view

    def adopt(self, text: str, other: MaskTable, *, in_answer: Callable[[str], bool]) -> str:
        """``text`` masked with ``other`` (a tool result through the input guard), re-numbered into
        this table. ``text`` must have been ``shield``-ed before ``other`` masked it, so a placeholder
        it already carried is not mistaken for one of ``other``'s; it is ``unshield``-ed here."""
        rename: dict[str, str] = {}
        keys = {ph: key for key, ph in other._by_key.items()}
        for ph, value in other._values.items():
            key = keys[ph]
            own = self._by_key.get(key) or self._tool_keys.get(key)
            if own is None:
                tag = ph[1 : ph.rindex("_")]
                n = self._counters.get(tag, 0) + 1
                self._counters[tag] = n
                own = self._tool_keys[key] = f"<{tag}_{n}>"
                if in_answer(CATEGORY_OF_TAG.get(tag, "")):
                    self._values[own] = value
                else:
                    self._tool_values[own] = value
            rename[ph] = own
        if rename:
            text = _PLACEHOLDER.sub(lambda m: rename.get(m.group(0), m.group(0)), text)
        return unshield(text)

    def unmask(self, text: str) -> str:
        if not self._values or "<" not in text:
            return text
        return _PLACEHOLDER.sub(lambda m: self._values.get(m.group(0), m.group(0)), text)

    def could_start_placeholder(self, tail: str) -> bool:
        """Whether ``tail`` (beginning with '<') is a proper prefix of a placeholder in this table."""
        return any(ph.startswith(tail) and ph != tail for ph in self._values)


def _category(placeholder: str) -> str:
    return CATEGORY_OF_TAG.get(placeholder[1 : placeholder.rindex("_")], "")


def shield(text: str) -> str:
    """Placeholders already in ``text`` written so that no masking pass can confuse them with its
    own (``unshield`` writes them back)."""
    if "<" not in text:
        return text
    return _PLACEHOLDER.sub(lambda m: f"\ue000{m.group(1)}_{m.group(2)}\ue001", text)


def unshield(text: str) -> str:
    if "\ue000" not in text:
        return text
    return _SHIELDED.sub(lambda m: f"<{m.group(1)}_{m.group(2)}>", text)


class StreamUnmasker:
    """Restores placeholders in a token stream.

    Text is released as soon as it cannot be the start of a placeholder; at most
    one partial placeholder (<= ``MAX_PLACEHOLDER_LEN`` chars) is held back.
    """

    __slots__ = ("_masks", "_pending")

    def __init__(self, masks: MaskTable) -> None:
        self._masks = masks
        self._pending = ""

    @property
    def held(self) -> int:
        return len(self._pending)

    def feed(self, chunk: str) -> str:
        if not chunk:
            return ""
        text = self._pending + chunk
        self._pending = ""
        if len(self._masks) == 0:
            return text
        p = text.rfind("<")
        if p != -1 and len(text) - p < MAX_PLACEHOLDER_LEN and self._masks.could_start_placeholder(text[p:]):
            self._pending = text[p:]
            text = text[:p]
        return self._masks.unmask(text)

    def finish(self) -> str:
        text, self._pending = self._pending, ""
        return self._masks.unmask(text)
