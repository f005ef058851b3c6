"""Import a ``promptfooconfig.yaml`` as a native evaluation run.

Read: ``prompts`` (strings — one user message, as promptfoo sends them — or a JSON list of chat
messages, or ``{raw, label}``), ``providers`` (``openai:chat:<model>``, ``openai:<model>``,
``prism:<model>`` or ``{id, label, config}``; the model must be one of Prism's), ``tests`` (``vars``,
``assert``, ``description``), ``defaultTest`` (``vars``, ``assert``, ``options.provider`` as the
rubric judge). Variants are prompts × providers. What cannot run natively is refused with a 400
naming it: ``file://`` references, ``javascript`` and inline ``python`` assertions (custom checks
come from the operator's module, ``type: python`` with the function's name), unknown types.
"""

from __future__ import annotations

from typing import Any

import orjson
import yaml

from gateway.errors import InvalidRequest
from gateway.evals.assertions import TYPES

MAX_CONFIG_BYTES = 1_000_000
_PREFIXES = ("openai:chat:", "openai:", "prism:")


def _bad(message: str, param: str) -> InvalidRequest:
    return InvalidRequest(message, param=param, code="invalid_promptfoo_config")


def _prompt(raw: Any, index: int) -> tuple[str, list[dict[str, str]]]:
    where = f"prompts[{index}]"
    label = f"p{index + 1}"
    if isinstance(raw, dict):
        label = str(raw.get("label") or raw.get("id") or label)
        raw = raw.get("raw")
    if not isinstance(raw, str):
        raise _bad(f"{where} must be a string or {{raw, label}}", where)
    if raw.startswith("file://"):
        raise _bad(f"{where}: file:// prompts are not supported; paste the prompt text", where)
    stripped = raw.strip()
    if stripped.startswith("["):
        try:
            messages = orjson.loads(stripped)
        except orjson.JSONDecodeError:
            messages = None
        if isinstance(messages, list):
            return label, messages
    return label, [{"role": "user", "content": raw}]


def _provider(raw: Any, index: int) -> tuple[str, str, dict[str, Any]]:
    where = f"providers[{index}]"
    options: dict[str, Any] = {}
    label = None
    if isinstance(raw, dict):
        label = raw.get("label")
        config = raw.get("config") or {}
        if not isinstance(config, dict):
            raise _bad(f"{where}.config must be an object", where)
        options = {k: v for k, v in config.items() if k in ("temperature", "max_tokens", "top_p", "seed")}
        raw = raw.get("id")
    if not isinstance(raw, str) or not raw:
        raise _bad(f"{where} must be a provider id", where)
    model = raw
    for prefix in _PREFIXES:
        if raw.startswith(prefix):
            model = raw.removeprefix(prefix)
            break
    else:
        if ":" in raw:
            raise _bad(f"{where}: provider {raw!r} is not an OpenAI-compatible one Prism serves", where)
    return str(label or model), model, options


def _assertion(raw: Any, where: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise _bad(f"{where} must be an object with a type", where)
    kind = raw.get("type")
    spec = {k: v for k, v in raw.items() if k in ("type", "value", "threshold", "weight", "mode", "provider")}
    if kind == "is-json" and isinstance(raw.get("value"), dict):
        spec["type"] = "json-schema"
    elif kind == "python" and isinstance(raw.get("value"), str) and not raw["value"].isidentifier():
        raise _bad(f"{where}: inline python is not run; name a function of the operator's module", where)
    elif kind not in TYPES:
        raise _bad(f"{where}: assertion type {kind!r} is not supported natively", where)
    return spec


def parse(text: bytes) -> dict[str, Any]:
    """A run body (``services/evaluations.create``) from the YAML's bytes."""
    if len(text) > MAX_CONFIG_BYTES:
        raise _bad(f"A promptfoo config is at most {MAX_CONFIG_BYTES} bytes", "file")
    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" (line {mark.line + 1})" if mark is not None else ""
        raise _bad(f"The promptfoo config is not valid YAML{line}", "file") from exc
    if not isinstance(config, dict):
        raise _bad("A promptfoo config is a YAML mapping", "file")
    prompts = config.get("prompts")
    providers = config.get("providers")
    tests = config.get("tests")
    if not isinstance(prompts, list) or not prompts:
        raise _bad("prompts must be a non-empty list", "prompts")
    if isinstance(providers, str):
        providers = [providers]
    if not isinstance(providers, list) or not providers:
        raise _bad("providers must be a non-empty list", "providers")
    if not isinstance(tests, list) or not tests:
        raise _bad("tests must be a non-empty list (file:// test files are not supported)", "tests")
    default = config.get("defaultTest") or {}
    if not isinstance(default, dict):
        raise _bad("defaultTest must be a mapping", "defaultTest")
    default_vars = default.get("vars") or {}
    default_asserts = [
        _assertion(a, f"defaultTest.assert[{i}]") for i, a in enumerate(default.get("assert") or [])
    ]
    variants = []
    for p_index, raw_prompt in enumerate(prompts):
        p_label, messages = _prompt(raw_prompt, p_index)
        for m_index, raw_provider in enumerate(providers):
            m_label, model, options = _provider(raw_provider, m_index)
            variants.append(
                {
                    "label": f"{p_label}:{m_label}"[:64],
                    "messages": messages,
                    "model": model,
                    "options": options,
                }
            )
    cases = []
    for index, test in enumerate(tests):
        if not isinstance(test, dict):
            raise _bad(f"tests[{index}] must be a mapping", f"tests[{index}]")
        test_vars = test.get("vars") or {}
        if not isinstance(test_vars, dict):
            raise _bad(f"tests[{index}].vars must be a mapping", f"tests[{index}].vars")
        asserts = [
            _assertion(a, f"tests[{index}].assert[{i}]") for i, a in enumerate(test.get("assert") or [])
        ]
        cases.append(
            {
                "vars": {**default_vars, **test_vars},
                "assert": asserts,
                "tags": [str(test["description"])[:64]] if test.get("description") else [],
            }
        )
    options = default.get("options") or {}
    judge = options.get("provider") if isinstance(options, dict) else None
    if isinstance(judge, dict):
        judge = judge.get("id")
    if isinstance(judge, str):
        judge = _provider(judge, 0)[1]
    return {
        "name": str(config.get("description") or "promptfoo")[:128],
        "variants": variants,
        "cases": cases,
        "assert": default_asserts,
        "judge_model": judge,
        "source": "promptfoo",
    }
