"""Write the figures of the last chaos run (``var/chaos/figures.json``) into docs/resilience.md.

    .venv/bin/python -m pytest -q -s tests/chaos && .venv/bin/python scripts/chaos_report.py

The table goes between the ``chaos-figures`` markers of the document; the rest is left alone.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIGURES = ROOT / "var" / "chaos" / "figures.json"
DOC = ROOT / "docs" / "resilience.md"
BEGIN, END = "<!-- chaos-figures:begin -->", "<!-- chaos-figures:end -->"
COMMAND = (
    ".venv/bin/python -m pytest -q -s -p no:cacheprovider tests/chaos"
    " && .venv/bin/python scripts/chaos_report.py"
)


def table(data: dict[str, dict[str, object]]) -> str:
    rows = [
        "| scenario | sent | ok | failed (by status) | fallbacks | p50 / p95 during fault | recover "
        "| usage records written / expected | notes |",
        "|---|---:|---:|---|---:|---|---:|---:|---|",
    ]
    for name, fig in data.items():
        failed = fig.get("failed") or {}
        assert isinstance(failed, dict)
        failed_text = ", ".join(f"{k}: {v}" for k, v in sorted(failed.items())) or "0"
        notes = ", ".join(
            f"{key}={fig[key]}"
            for key in ("upstream_requests", "victim_records_lost", "exit_status", "shutdown_s")
            if key in fig
        )
        rows.append(
            f"| {name} | {fig['sent']} | {fig['succeeded']} | {failed_text} | {fig['fallbacks']} | "
            f"{fig['p50_ms']} / {fig['p95_ms']} ms | {fig['recover_s']} s | "
            f"{fig['records_written']} / {fig['records_expected']} | {notes} |"
        )
    stamp = max(str(fig.get("at", "")) for fig in data.values())
    return f"Last run: {stamp}, produced by\n\n    {COMMAND}\n\n" + "\n".join(rows)


def main() -> int:
    if not FIGURES.exists():
        print(f"no figures at {FIGURES}: run the chaos suite first", file=sys.stderr)
        return 1
    data = json.loads(FIGURES.read_text())
    text = DOC.read_text()
    block = f"{BEGIN}\n{table(data)}\n{END}"
    text = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: block, text, flags=re.S)
    DOC.write_text(text)
    print(f"updated {DOC} with {len(data)} scenarios")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
