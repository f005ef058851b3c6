"""Dataset cases in and out: CSV, JSON and JSONL.

A case is ``{input?, vars, expected?, assert?, tags, verified}``. In CSV, the columns ``input``,
``expected``, ``tags`` (``;`` or ``,`` separated), ``verified`` (true/false/1/0/yes/no) and
``assert`` (a JSON list) are the case's own; ``__expected`` (promptfoo's) is read as ``expected``;
every other column is a variable (``vars.`` prefix optional). JSON is a list of case objects (or
``{"cases": [...]}``); JSONL one case object per line. Limits are checked while parsing, so a file
with too many cases is refused before anything is written.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from typing import Any, Literal

import orjson

from gateway.errors import InvalidRequest

Format = Literal["csv", "json", "jsonl"]
FORMATS: tuple[Format, ...] = ("csv", "json", "jsonl")
MAX_CASES = 10_000
"""Cases per dataset (and per import)."""
MAX_FIELD_CHARS = 100_000
OWN_COLUMNS = frozenset({"input", "expected", "__expected", "tags", "verified", "assert"})
_TRUE = {"true", "1", "yes", "y"}
_FALSE = {"false", "0", "no", "n", ""}


def too_many(count: int) -> InvalidRequest:
    return InvalidRequest(
        f"A dataset holds at most {MAX_CASES} cases; this one would hold {count}",
        param="cases",
        code="too_many_cases",
    )


def _text(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise InvalidRequest(f"{where} must be a string", param=where)
    text = str(value)
    if len(text) > MAX_FIELD_CHARS or "\x00" in text:
        raise InvalidRequest(f"{where} is longer than {MAX_FIELD_CHARS} characters or holds NUL", param=where)
    return text


def _flag(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    if value is None:
        return False
    raise InvalidRequest(f"{where} must be true or false", param=where)


def _tags(value: Any, where: str) -> list[str]:
    if value is None or value == "":
        return []
    items = value.replace(",", ";").split(";") if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(t, str) and len(t) <= 64 for t in items):
        raise InvalidRequest(f"{where} must be a list of short strings", param=where)
    return [t.strip() for t in items if t.strip()][:32]


def case(raw: Any, where: str) -> dict[str, Any]:
    """One case from its object form, checked."""
    if not isinstance(raw, Mapping):
        raise InvalidRequest(f"{where} must be an object", param=where)
    variables = raw.get("vars") or {}
    if not isinstance(variables, Mapping) or not all(isinstance(k, str) for k in variables):
        raise InvalidRequest(f"{where}.vars must be an object", param=f"{where}.vars")
    for key, value in variables.items():
        if isinstance(value, str):
            _text(value, f"{where}.vars.{key}")
    assertions = raw.get("assert", raw.get("assertions")) or []
    if not isinstance(assertions, list):
        raise InvalidRequest(f"{where}.assert must be a list", param=f"{where}.assert")
    return {
        "input": _text(raw.get("input"), f"{where}.input"),
        "vars": dict(variables),
        "expected": _text(raw.get("expected", raw.get("__expected")), f"{where}.expected"),
        "assertions": assertions,
        "tags": _tags(raw.get("tags"), f"{where}.tags"),
        "verified": _flag(raw.get("verified"), f"{where}.verified"),
    }


def _csv_rows(text: str) -> Iterable[dict[str, Any]]:
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames:
        raise InvalidRequest("The CSV file has no header row", param="file", code="invalid_csv")
    for row in reader:
        if None in row:
            raise InvalidRequest(
                f"CSV line {reader.line_num} has more fields than the header",
                param="file",
                code="invalid_csv",
            )
        variables = {
            key.removeprefix("vars."): value for key, value in row.items() if key not in OWN_COLUMNS and key
        }
        assertions: Any = None
        if row.get("assert"):
            try:
                assertions = orjson.loads(row["assert"])
            except orjson.JSONDecodeError as exc:
                raise InvalidRequest(
                    f"CSV line {reader.line_num}: assert must be a JSON list",
                    param="file",
                    code="invalid_csv",
                ) from exc
        yield {
            "input": row.get("input") or None,
            "vars": variables,
            "expected": row.get("expected") or row.get("__expected") or None,
            "assert": assertions,
            "tags": row.get("tags"),
            "verified": row.get("verified"),
        }


def parse(body: bytes, fmt: Format, *, room: int) -> list[dict[str, Any]]:
    """Cases from a file's bytes; ``room`` is how many more cases the dataset may take."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidRequest("The file is not UTF-8 text", param="file", code="invalid_encoding") from exc
    if "\x00" in text:
        raise InvalidRequest("The file holds a NUL character", param="file", code="invalid_text")
    rows: Iterable[Any]
    if fmt == "csv":
        try:
            rows = list(_limited(_csv_rows(text), room))
        except csv.Error as exc:
            raise InvalidRequest(f"Invalid CSV: {exc}", param="file", code="invalid_csv") from exc
    elif fmt == "json":
        try:
            data = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise InvalidRequest("The file is not valid JSON", param="file", code="invalid_json") from exc
        listed = data.get("cases") if isinstance(data, dict) else data
        if not isinstance(listed, list):
            raise InvalidRequest("A JSON dataset is a list of cases", param="file", code="invalid_json")
        rows = listed
    else:
        lines = [line for line in text.splitlines() if line.strip()]
        if len(lines) > room:
            raise too_many(len(lines) + (MAX_CASES - room))
        try:
            rows = [orjson.loads(line) for line in lines]
        except orjson.JSONDecodeError as exc:
            raise InvalidRequest(
                "Every JSONL line must be a JSON object", param="file", code="invalid_json"
            ) from exc
    rows = list(rows)
    if len(rows) > room:
        raise too_many(len(rows) + (MAX_CASES - room))
    return [case(row, f"cases[{index}]") for index, row in enumerate(rows)]


def _limited(rows: Iterable[dict[str, Any]], room: int) -> Iterable[dict[str, Any]]:
    for count, row in enumerate(rows, start=1):
        if count > room:
            raise too_many(count + (MAX_CASES - room))
        yield row


def dump(cases: list[dict[str, Any]], fmt: Format) -> bytes:
    if fmt == "json":
        return orjson.dumps(cases)
    if fmt == "jsonl":
        return b"".join(orjson.dumps(item) + b"\n" for item in cases)
    names = sorted({name for item in cases for name in item["vars"]})
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["input", "expected", "tags", "verified", "assert", *names])
    for item in cases:
        writer.writerow(
            [
                item["input"] or "",
                item["expected"] or "",
                ";".join(item["tags"]),
                "true" if item["verified"] else "false",
                orjson.dumps(item["assert"]).decode() if item["assert"] else "",
                *[_cell(item["vars"].get(name)) for name in names],
            ]
        )
    return out.getvalue().encode()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else orjson.dumps(value).decode()
