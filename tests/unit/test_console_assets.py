"""The console's static files: every string in both languages, no asset from another origin, no
inline script or ``innerHTML`` (the ``/ui`` CSP allows same-origin scripts only), and the vendored
Swagger UI with its licence."""

from __future__ import annotations

import re
from pathlib import Path

STATIC = Path(__file__).resolve().parents[2] / "gateway" / "ui" / "static"
SOURCES = [*STATIC.glob("*.js"), *STATIC.glob("pages/*.js")]


STRING = r'"(?:[^"\\\n]|\\.)*"'
ENTRY = re.compile(rf'^  (?:"([a-z0-9_.]+)"|([a-z_]+)): \[({STRING}), ({STRING})\],$')


def _table() -> dict[str, tuple[str, str]]:
    """The ``TABLE`` of i18n.js: one line per key, ``key: ["English", "한국어"],``."""
    text = (STATIC / "i18n.js").read_text()
    body = text[text.index("const TABLE = {\n") + len("const TABLE = {\n") : text.index("\n};\n")]
    table: dict[str, tuple[str, str]] = {}
    for line in body.splitlines():
        match = ENTRY.match(line)
        assert match, f"not a key with one English and one Korean string: {line!r}"
        key = match[1] or match[2]
        assert key not in table, f"{key} twice"
        table[key] = (match[3], match[4])
    return table


def test_every_key_in_both_languages_and_every_used_key() -> None:
    table = _table()
    assert all(en.strip('"') and ko.strip('"') for en, ko in table.values())
    en = set(table)
    used = {key for path in SOURCES for key in re.findall(r'\bt\("([a-z0-9_.]+)"', path.read_text())}
    static = set(re.findall(r'data-i18n="([a-z_.]+)"', (STATIC / "index.html").read_text()))
    dynamic = {key for key in used if key.endswith((".", "_"))}  # "nav." + id, "exp.done_" + action
    assert (used - dynamic) | static <= en, sorted(((used - dynamic) | static) - en)
    for prefix in dynamic:
        assert any(key.startswith(prefix) for key in en), prefix


def test_no_remote_assets_inline_scripts_or_inner_html() -> None:
    html = (STATIC / "index.html").read_text()
    assert "http://" not in html and "https://" not in html
    assert re.findall(r"<script[^>]*>", html) == ['<script type="module" src="/ui/static/app.js">']
    for path in SOURCES:
        source = path.read_text()
        assert "innerHTML" not in source and "eval(" not in source and "new Function" not in source, path
        assert not re.search(r"""["'`]https?://""", source), path


def test_vendored_swagger_ui_with_licence() -> None:
    vendor = STATIC / "vendor" / "swagger-ui"
    assert "Apache License" in (vendor / "LICENSE").read_text()
    assert (vendor / "swagger-ui-bundle.js").stat().st_size > 500_000
    assert "swagger-ui-dist 5.36.0" in (vendor / "VERSION").read_text()
