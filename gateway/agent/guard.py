"""The guard nodes' adapter over the guardrails library (``gateway/guardrails``, docs/guardrails.md).

The compiled ``Guardrails`` lives on the config snapshot (built once per load or
reload); this service is stateless and holds no per-request data. Per request:

* input: pick the policy for where the prompt may go, run ``check_input``,
  refuse a block with a 400 ``ContentBlocked`` (``prompt_injection_detected`` /
  ``pii_blocked``), else hand the masked copies to the providers and keep the
  ``MaskTable`` in the graph state;
* output: ``check_output`` on every choice (content and tool call arguments), or
  a stream filter over ``StreamOutputGuard`` for streams;
* every verdict is made visible the same way: ``x-prism-guard`` (via
  ``RequestTrace.guard_header``, which also lands in the usage record's
  ``guard_flags``), ``prism_guard_actions_total{stage,category,action}`` and a
  ``guard_verdict`` log event carrying only categories, codes and counts.

Policy choice: the request's messages are prepared once and reused for every
attempt, fallback and shadow call, so when ANY target of the route (the
fallback chain and the shadows) is external, the policy of the first external
target is used even if the primary is local: the masked messages then go to
every target, local ones included (they see placeholders, which are restored
in the answer). Otherwise (all local) the primary's policy applies.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

import structlog

from gateway.agent.guard_frames import FrameHold
from gateway.agent.state import RequestTrace
from gateway.config.guardrails import GuardPolicy
from gateway.errors import ContentBlocked
from gateway.guardrails import Guardrails, InputVerdict, MaskTable, OutputVerdict, StreamOutputGuard
from gateway.observability import metrics
from gateway.providers.base import Choice, Completion, Delta
from gateway.routing.router import RouteDecision

log = structlog.get_logger("prism.guard")

MAX_HEADER = 256
"""``x-prism-guard`` / ``usage_records.guard_flags`` (String(256)) length cap."""

StreamFilter = Callable[[AsyncIterator[Delta]], AsyncIterator[Delta]]

_INPUT_MESSAGES = {
    "prompt_injection_detected": "The request was blocked: it looks like a prompt injection attempt.",
    "pii_blocked": "The request was blocked: it contains personal data the destination may not receive.",
}
_OUTPUT_MESSAGE = "The answer was withheld by the gateway's output policy."


@dataclass(frozen=True, slots=True)
class GuardedInput:
    messages: list[dict[str, Any]]
    policy: GuardPolicy
    masks: MaskTable
    verdict: InputVerdict


def _cap(header: str) -> str:
    if len(header) <= MAX_HEADER:
        return header
    cut = header.rfind(";", 0, MAX_HEADER)
    return header[: cut if cut > 0 else MAX_HEADER]


def _interesting(verdict: OutputVerdict) -> bool:
    return bool(verdict.action != "allow" or verdict.actions or verdict.deny_matched)


def merge_output_verdicts(verdicts: Iterable[OutputVerdict]) -> OutputVerdict:
    """One verdict for the whole answer (several choices, tool call arguments)."""
    merged = OutputVerdict()
    for verdict in verdicts:
        if verdict.blocked:
            merged.escalate("block", verdict.block_reason)
        elif verdict.action == "flag":
            merged.escalate("flag")
        merged.pii_detected |= verdict.pii_detected
        merged.redacted |= verdict.redacted
        merged.flagged |= verdict.flagged
        merged.deny_matched |= verdict.deny_matched
        merged.unmasked += verdict.unmasked
        for kind, action in verdict.actions.items():
            merged.note(kind, action)
    return merged


class GuardService:
    # -- policy --------------------------------------------------------------------------------

    @staticmethod
    def policy_for_route(guardrails: Guardrails, targets: Any, route: RouteDecision) -> GuardPolicy:
        """The primary's policy, unless some target of the chain or a shadow is external (module doc)."""
        primary = targets[route.targets[0]]
        if primary.provider.is_local:
            for name in (*route.targets[1:], *route.shadows):
                target = targets.get(name)
                if target is not None and not target.provider.is_local:
                    return guardrails.policy_for(model=name, is_local=False)
        return guardrails.policy_for(model=route.targets[0], is_local=primary.provider.is_local)

    # -- input ---------------------------------------------------------------------------------

    def check_input(
        self,
        guardrails: Guardrails,
        messages: list[dict[str, Any]],
        *,
        policy: GuardPolicy,
        trace: RequestTrace,
        model: str,
    ) -> GuardedInput:
        """Masked copies of ``messages``; raises ``ContentBlocked`` (400) when the policy blocks."""
        verdict = guardrails.check_input(messages, policy=policy)
        trace.guard_header = _cap(verdict.header_value())
        fields = verdict.as_log_fields()
        trace.guard_fields["input"] = fields
        for category, action in verdict.metric_labels():
            metrics.GUARD_ACTIONS.labels(stage="input", category=category, action=action).inc()
        noteworthy = verdict.action != "allow" or bool(verdict.pii_detected)
        (log.info if noteworthy else log.debug)(
            "guard_verdict", request_id=trace.request_id, model=model, **fields
        )
        if verdict.blocked:
            code = verdict.block_reason or "content_policy_violation"
            raise ContentBlocked(
                _INPUT_MESSAGES.get(code, "The request was blocked by the gateway's input policy."),
                param="messages",
                code=code,
                headers={"x-prism-guard": trace.guard_header},
            )
        return GuardedInput(messages=verdict.messages, policy=policy, masks=verdict.masks, verdict=verdict)

    # -- output --------------------------------------------------------------------------------

    @staticmethod
    def wants_output(policy: GuardPolicy, masks: MaskTable | None) -> bool:
        """Whether the output guard has anything to do (filtering, or placeholders to restore)."""
        output = policy.output
        return (policy.enabled and output.enabled) or (output.unmask and masks is not None and len(masks) > 0)

    def check_completion(
        self,
        guardrails: Guardrails,
        completion: Completion,
        *,
        policy: GuardPolicy,
        masks: MaskTable,
        trace: RequestTrace,
        model: str,
    ) -> Completion:
        """The completion with every choice's content and tool call arguments filtered and un-masked."""
        verdicts: list[OutputVerdict] = []
        json_masks: MaskTable | None = None
        choices: list[Choice] = []
        for choice in completion.choices:
            content = choice.content
            if content:
                verdict = guardrails.check_output(content, policy=policy, masks=masks)
                verdicts.append(verdict)
                content = verdict.text
            tool_calls = choice.tool_calls
            if tool_calls:
                if json_masks is None:
                    json_masks = masks.json_escaped()
                tool_calls = [
                    self._tool_call(guardrails, call, policy, json_masks, verdicts) for call in tool_calls
                ]
            choices.append(replace(choice, content=content, tool_calls=tool_calls))
        verdict = merge_output_verdicts(verdicts)
        self.record_output(verdict, trace=trace, model=model)
        if verdict.blocked:
            raise ContentBlocked(
                _OUTPUT_MESSAGE,
                code=verdict.block_reason or "content_policy_violation",
                headers={"x-prism-guard": trace.guard_header or ""},
            )
        return replace(completion, choices=choices)

    @staticmethod
    def _tool_call(
        guardrails: Guardrails,
        call: dict[str, Any],
        policy: GuardPolicy,
        masks: MaskTable,
        verdicts: list[OutputVerdict],
    ) -> dict[str, Any]:
        function = call.get("function")
        if not isinstance(function, dict) or not isinstance(function.get("arguments"), str):
            return call
        verdict = guardrails.check_output(function["arguments"], policy=policy, masks=masks)
        verdicts.append(verdict)
        return {**call, "function": {**function, "arguments": verdict.text}}

    def stream_filter(
        self,
        guardrails: Guardrails,
        *,
        policy: GuardPolicy,
        masks: MaskTable,
        trace: RequestTrace,
        model: str,
        window: int = 64,
    ) -> StreamFilter:
        """A ``StreamHandle.filters`` entry: filters and un-masks content and tool call arguments.

        A block raises ``ContentBlocked`` inside the relay, which ends the stream with an
        OpenAI-style error event (and no ``[DONE]``); nothing past the held-back window leaks.
        """
        service = self

        async def apply(deltas: AsyncIterator[Delta]) -> AsyncIterator[Delta]:
            content: dict[int, StreamOutputGuard] = {}
            arguments: dict[tuple[int, int], StreamOutputGuard] = {}
            json_masks: list[MaskTable] = []

            def guard_for(index: int) -> StreamOutputGuard:
                guard = content.get(index)
                if guard is None:
                    guard = content[index] = guardrails.stream_output(
                        policy=policy, masks=masks, window=window
                    )
                return guard

            def arguments_guard(key: tuple[int, int]) -> StreamOutputGuard:
                guard = arguments.get(key)
                if guard is None:
                    if not json_masks:
                        json_masks.append(masks.json_escaped())
                    guard = arguments[key] = guardrails.stream_output(
                        policy=policy, masks=json_masks[0], window=window
                    )
                return guard

            def check(guard: StreamOutputGuard) -> None:
                if guard.verdict.blocked:
                    raise ContentBlocked(
                        _OUTPUT_MESSAGE, code=guard.verdict.block_reason or "content_policy_violation"
                    )

            def flush(index: int) -> Delta | None:
                text = ""
                guard = content.get(index)
                if guard is not None:
                    text = guard.finish()
                    check(guard)
                calls: list[dict[str, Any]] = []
                for (choice, call_index), args_guard in arguments.items():
                    if choice != index:
                        continue
                    tail = args_guard.finish()
                    check(args_guard)
                    if tail:
                        calls.append({"index": call_index, "function": {"arguments": tail}})
                if text or calls:
                    return Delta(content=text or None, tool_calls=calls or None, index=index)
                return None

            finished: set[int] = set()
            open_call: dict[int, int] = {}  # per choice, the tool call whose arguments are streaming
            closed: list[StreamOutputGuard] = []  # argument guards finished early (their verdicts count)
            hold: FrameHold | None = None  # set once the stream carries upstream chunks
            try:
                async for delta in deltas:
                    index = delta.index
                    text: str | None = None
                    if delta.content:
                        guard = guard_for(index)
                        text = guard.feed(delta.content)
                        check(guard)
                    calls: list[dict[str, Any]] | None = None
                    if delta.tool_calls:
                        calls = []
                        for call in delta.tool_calls:
                            call_index = int(call.get("index", 0))
                            previous = open_call.get(index)
                            if previous is not None and previous != call_index:
                                # the previous call's held-back tail goes out before this one starts
                                done = arguments.pop((index, previous), None)
                                if done is not None:
                                    closed.append(done)
                                    tail_args = done.finish()
                                    check(done)
                                    if tail_args:
                                        tail_call = {"index": previous, "function": {"arguments": tail_args}}
                                        calls.append(tail_call)
                            open_call[index] = call_index
                            function = call.get("function")
                            if isinstance(function, dict) and isinstance(function.get("arguments"), str):
                                args_guard = arguments_guard((index, int(call.get("index", 0))))
                                piece = args_guard.feed(function["arguments"])
                                check(args_guard)
                                call = {**call, "function": {**function, "arguments": piece}}
                            calls.append(call)
                    if delta.frames or hold is not None:  # upstream chunks: held whole (guard_frames.py)
                        hold = hold or FrameHold()
                        done_now = delta.finish_reason is not None and index not in finished
                        if done_now:
                            finished.add(index)
                            tail = flush(index)
                            if tail is not None:
                                text = (text or "") + (tail.content or "")
                                calls = [*(calls or ()), *(tail.tool_calls or ())] or None
                        for out in hold.push(delta, text, calls, closed=done_now):
                            yield out
                        continue
                    if text or calls:
                        yield Delta(content=text or None, tool_calls=calls, index=index)
                    if delta.finish_reason is not None and index not in finished:
                        finished.add(index)
                        tail = flush(index)
                        if tail is not None:
                            yield tail
                    if delta.finish_reason is not None or delta.usage is not None:
                        yield Delta(finish_reason=delta.finish_reason, usage=delta.usage, index=index)
                for index in sorted({*content, *(key[0] for key in arguments)} - finished):
                    tail = flush(index)
                    if tail is not None and hold is not None:
                        hold.add_text(index, tail.content)
                        if tail.tool_calls:
                            yield Delta(tool_calls=tail.tool_calls, index=index)
                    elif tail is not None:
                        yield tail
                if hold is not None:
                    for out in hold.drain(final=True):
                        yield out
            finally:
                verdicts = [guard.verdict for guard in (*content.values(), *arguments.values(), *closed)]
                service.record_output(merge_output_verdicts(verdicts), trace=trace, model=model)

        return apply

    @staticmethod
    def record_output(verdict: OutputVerdict, *, trace: RequestTrace, model: str) -> None:
        """Metrics, log and header/usage flags for an output verdict (no-op when nothing happened)."""
        if not _interesting(verdict):
            if verdict.unmasked:
                trace.guard_fields["output"] = verdict.as_log_fields()
            return
        fields = verdict.as_log_fields()
        trace.guard_fields["output"] = fields
        for category, action in verdict.metric_labels():
            metrics.GUARD_ACTIONS.labels(stage="output", category=category, action=action).inc()
        log.info("guard_verdict", request_id=trace.request_id, model=model, **fields)
        output = verdict.header_value()
        trace.guard_header = _cap(f"{trace.guard_header};{output}" if trace.guard_header else output)
