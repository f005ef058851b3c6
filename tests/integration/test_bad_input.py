"""Every class of bad input gets its documented status and OpenAI's error shape; nothing leaks."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support.gateway_proc import GatewayProcess, running_gateway

CHAT = "/v1/chat/completions"


def _assert_error(
    response: httpx.Response, status: int, *, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"] and "Traceback" not in error["message"]
    if code is not None:
        assert error["code"] == code
    if param is not None:
        assert error["param"] == param
    assert response.headers.get("x-request-id")
    return error


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "mock-fast"}, "messages"),
        ({"model": "mock-fast", "messages": []}, "messages"),
        ({"model": "mock-fast", "messages": "hello"}, "messages"),
        ({"messages": [{"role": "user", "content": "x"}]}, "model"),
        ({"model": "mock-fast", "messages": [{"role": "wizard", "content": "x"}]}, "messages.0.role"),
        (
            {"model": "mock-fast", "messages": [{"role": "user", "content": "x"}], "temperature": 5},
            "temperature",
        ),
        (
            {"model": "mock-fast", "messages": [{"role": "user", "content": "x"}], "max_tokens": -1},
            "max_tokens",
        ),
        ({"model": "mock-fast", "messages": [{"role": "user", "content": "x"}], "stream": "yes"}, "stream"),
    ],
)
def test_invalid_bodies_are_400(gateway: GatewayProcess, body: dict[str, Any], param: str) -> None:
    error = _assert_error(httpx.post(gateway.url + CHAT, json=body), 400, param=param)
    assert error["type"] == "invalid_request_error"


@pytest.mark.parametrize("raw", [b"{not json", b"", b"[1,2]", b"\xff\xfe{}", b'"string"'])
def test_malformed_json_is_400(gateway: GatewayProcess, raw: bytes) -> None:
    response = httpx.post(gateway.url + CHAT, content=raw, headers={"content-type": "application/json"})
    _assert_error(response, 400, code="invalid_json")


def test_deeply_nested_json_is_400(gateway: GatewayProcess) -> None:
    nested: Any = "x"
    for _ in range(200):
        nested = [nested]
    body = {"model": "mock-fast", "messages": [{"role": "user", "content": "x"}], "metadata_extra": nested}
    _assert_error(httpx.post(gateway.url + CHAT, json=body), 400, code="invalid_json")


def test_unknown_extra_fields_are_accepted(gateway: GatewayProcess) -> None:
    body = {"model": "mock-fast", "messages": [{"role": "user", "content": "x"}], "vendor_knob": {"a": 1}}
    assert httpx.post(gateway.url + CHAT, json=body).status_code == 200


def test_unknown_model_is_404(gateway: GatewayProcess) -> None:
    body = {"model": "gpt-17-ultra", "messages": [{"role": "user", "content": "x"}]}
    _assert_error(httpx.post(gateway.url + CHAT, json=body), 404, code="model_not_found", param="model")


def test_unknown_path_and_method(gateway: GatewayProcess) -> None:
    _assert_error(httpx.get(gateway.url + "/v1/nothing-here"), 404)
    _assert_error(httpx.get(gateway.url + CHAT), 405)


def test_context_too_long_is_400(gateway: GatewayProcess) -> None:
    body = {"model": "mock-fast", "max_tokens": 100_000, "messages": [{"role": "user", "content": "x"}]}
    _assert_error(httpx.post(gateway.url + CHAT, json=body), 400, code="context_length_exceeded")


def test_n_greater_than_one_stream_unsupported(gateway: GatewayProcess) -> None:
    body = {"model": "mock-fast", "n": 2, "stream": True, "messages": [{"role": "user", "content": "x"}]}
    _assert_error(httpx.post(gateway.url + CHAT, json=body), 400, param="n")
    ok = httpx.post(gateway.url + CHAT, json={**body, "stream": False})
    assert [c["index"] for c in ok.json()["choices"]] == [0, 1]


def test_body_over_limit_is_413(tmp_path: Any) -> None:
    with running_gateway(tmp_path, env={"GATEWAY_MAX_BODY_BYTES": "2048"}) as gateway:
        body = {"model": "mock-fast", "messages": [{"role": "user", "content": "x" * 5000}]}
        _assert_error(httpx.post(gateway.url + CHAT, json=body), 413)

        def chunks() -> Any:
            for _ in range(10):
                yield b" " * 1000

        response = httpx.post(
            gateway.url + CHAT, content=chunks(), headers={"content-type": "application/json"}
        )
        _assert_error(response, 413)


def test_an_unknown_model_name_in_any_script_is_a_404_not_a_500(gateway: GatewayProcess) -> None:
    """Error answers name the model in a header only when it is a configured one: a client's name
    in any script (here outside Latin-1) cannot be written into a header."""
    body = {"model": "á\U000440f0Oô«", "messages": [{"role": "user", "content": "x"}]}
    error = _assert_error(httpx.post(gateway.url + CHAT, json=body), 404, param="model")
    assert error["code"] == "model_not_found"
