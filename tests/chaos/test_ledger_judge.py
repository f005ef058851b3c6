"""The ledger checker's own arithmetic (no servers): matching answers to rows, quota windows, poison."""

from __future__ import annotations

from typing import Any

from tests.chaos.ledger_harness import Answer, Principal, Rows, missing, overruns, poison_misses

KEY_A = Principal("a", "user-a", "key-a", "sk-a")
KEY_B = Principal("b", "user-b", "key-b", "sk-b")
LIMITED = Principal("l", "user-a", "key-l", "sk-l", rpm_limit=2)


def ok(principal: Principal, server_id: str, started: float = 0.0, kind: str = "normal") -> Answer:
    return Answer(
        kind, "http://127.0.0.1:1", principal, False, None, started, started + 0.1, 200, True, server_id
    )


def rows(*pairs: tuple[str, str]) -> Rows:
    by_id: dict[str, list[dict[str, Any]]] = {}
    for request_id, key_id in pairs:
        by_id.setdefault(request_id, []).append({"request_id": request_id, "api_key_id": key_id})
    return Rows(by_id, has_client_column=False)


def test_every_answer_needs_a_row_of_its_own() -> None:
    answers = [ok(KEY_A, "r1"), ok(KEY_A, "r2"), ok(KEY_B, "r2"), ok(KEY_A, "r3"), ok(KEY_A, "r3")]
    found = missing(answers, rows(("r1", "key-a"), ("r2", "key-a"), ("r3", "key-a")))
    # r2 of key B has only key A's row; the second r3 answer shares the one row.
    assert [(a.server_id, a.principal.name) for a in found] == [("r2", "b"), ("r3", "a")]
    assert missing(answers[:1], rows(("r1", "key-a"))) == []


def test_incomplete_answers_owe_nothing() -> None:
    cut = ok(KEY_A, "r1")
    cut.complete = False
    assert missing([cut], rows()) == []


def test_overruns_count_only_what_surely_fits_one_minute() -> None:
    burst = [ok(LIMITED, f"h{i}", started=i * 0.5) for i in range(5)]
    assert overruns(burst) == 3
    spread = [ok(LIMITED, f"s{i}", started=i * 31.0) for i in range(5)]  # 2 per window at most
    assert overruns(spread) == 0
    assert overruns([ok(KEY_A, f"u{i}") for i in range(50)]) == 0  # no limit, no overrun


def test_poison_must_be_a_shaped_4xx() -> None:
    refused = Answer("poison:model:nul", "u", KEY_A, False, None, 0.0, status=400, error_shape=True)
    bare = Answer("poison:user:nul", "u", KEY_A, False, None, 0.0, status=400, error_shape=False)
    accepted = ok(KEY_A, "p1", kind="poison:content:nul")
    big = ok(KEY_A, "p2", kind="poison:content:1mb")
    crashed = Answer("poison:x-request-id:nul", "u", KEY_A, False, None, 0.0, status=500)
    closed = Answer("poison:x-request-id:nul", "u", KEY_A, False, None, 0.0, status="conn")
    misses = poison_misses([refused, bare, accepted, big, crashed, closed], rows())
    assert misses == {"user:nul=400": 1, "content:nul=200": 1, "x-request-id:nul=500": 1}
