"""Cheap-tier calibration (issue #21): the router honours per-intent, per-language thresholds, the
proposal is the largest threshold under the loss (and hard-prompt) bound, the fragment round-trips
through the config, and the independent (held-out public) figures stay above their floors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from gateway.config.routing import RoutingConfig
from gateway.intent import IntentResult, decide_tier
from gateway.routing.calibration import (
    PairRecord,
    Prices,
    apply_fragment,
    calibrate_and_evaluate,
    evaluate,
    load_pairwise_jsonl,
    propose,
    thresholds,
    with_thresholds,
    yaml_fragment,
)
from gateway.routing.router import tier_for

ROOT = Path(__file__).resolve().parents[2]
PAIRS = ROOT / "tests" / "data" / "routing" / "pairwise_public.jsonl"
LABELLED = ROOT / "tests" / "data" / "routing" / "routing.jsonl"

CONFIG = {
    "models": {
        "small": {"provider": "mock", "tier": "cheap", "price_input_per_mtok": 0.1,
                  "price_output_per_mtok": 0.4},
        "big": {"provider": "mock", "tier": "strong", "price_input_per_mtok": 2.0,
                "price_output_per_mtok": 8.0},
    },
    "aliases": {"auto": {"smart": True}},
}


def _config(thresholds_: dict[str, dict[str, float]] | None = None) -> RoutingConfig:
    data = json.loads(json.dumps(CONFIG))
    if thresholds_ is not None:
        data["routing"] = {"complexity_thresholds": thresholds_}
    return RoutingConfig.model_validate(data)


def _intent(label: str, complexity: float, language: str = "en", confidence: float = 0.9) -> IntentResult:
    return IntentResult(label=label, confidence=confidence, complexity=complexity, language=language)


# ------------------------------------------------------------------------------------ router and config


def test_no_thresholds_is_todays_rule() -> None:
    config = _config()
    for res in (_intent("general", 0.1), _intent("general", 0.7), _intent("coding", 0.1),
                _intent("small_talk", 0.2, confidence=0.3), _intent("translation", 0.59, "ko")):
        assert tier_for(res, config) == decide_tier(res, intent_tiers=config.routing.intent_tiers)


def test_thresholds_per_intent_and_language() -> None:
    config = _config({"coding": {"en": 0.3}, "general": {"ko": 0.2, "*": 0.4}})
    assert tier_for(_intent("coding", 0.29), config) == "cheap"  # mapped strong, calibrated cheap below 0.3
    assert tier_for(_intent("coding", 0.30), config) == "strong"
    assert tier_for(_intent("coding", 0.1, "ko"), config) == "strong"  # no ko entry, no "*": today's rule
    assert tier_for(_intent("general", 0.25, "ko"), config) == "strong"  # lowered from 0.6
    assert tier_for(_intent("general", 0.15, "ko"), config) == "cheap"
    assert tier_for(_intent("general", 0.35, "mixed"), config) == "cheap"  # "*"
    assert tier_for(_intent("general", 0.45, "en"), config) == "strong"
    assert tier_for(_intent("coding", 0.1, confidence=0.2), config) == "strong"  # unsure stays strong
    assert tier_for(_intent("reasoning", 0.0), config) == "strong"  # intents without an entry: unchanged


@pytest.mark.parametrize(
    "bad", [{"general": {"fr": 0.3}}, {"general": {"en": 1.5}}, {"general": {"en": -0.1}}]
)
def test_bad_thresholds_are_refused(bad: dict[str, dict[str, float]]) -> None:
    with pytest.raises(ValidationError, match="complexity_thresholds"):
        _config(bad)


# ------------------------------------------------------------------------------------------- proposing


def _records(intent: str, language: str, worse_at: list[float], good_at: list[float]) -> list[PairRecord]:
    out = [PairRecord(intent, language, c, 0.9, 3.0, 8.0, "t", 100, 200, 200) for c in worse_at]
    out += [PairRecord(intent, language, c, 0.9, 8.0, 8.0, "t", 100, 200, 200) for c in good_at]
    return out


def test_proposal_is_the_largest_threshold_under_the_loss() -> None:
    good = [i / 50 for i in range(30)]  # 0.00 .. 0.58, cheap as good
    worse = [0.70, 0.72, 0.74, 0.76, 0.78, 0.80, 0.82, 0.84, 0.86, 0.88]
    records = _records("coding", "en", worse, good)
    records += _records("general", "en", [0.01 * i for i in range(40)], [])
    config = _config()
    prices = Prices.from_config(config)
    (coding, general) = propose(records, config=config, prices=prices, max_loss=0.05, min_pairs=30)
    # 2 worse of 40 allowed (0.05): the threshold lets 0.70 and 0.72 through and stops before 0.74
    assert coding.threshold == pytest.approx(0.721)
    assert (coding.n, coding.routed_cheap, coding.worse_routed_cheap) == (40, 32, 2)
    assert coding.loss.estimate == pytest.approx(0.05) and coding.loss.high > 0.05
    assert (coding.as_good, coding.as_good_routed_cheap, coding.current_threshold) == (30, 30, 0.0)
    # saving: 32 of 40 prompts at cheap instead of strong prices (same tokens each)
    cheap_cost, strong_cost = prices.costs(records[0])
    assert coding.saving == pytest.approx(32 * (strong_cost - cheap_cost) / (40 * strong_cost))
    # every cheap answer worse: only the 5 % the bound allows go cheap (lowered from today's 0.6)
    assert general.threshold == pytest.approx(0.011) and general.current_threshold == 0.6
    assert general.routed_cheap == 2 and general.current_loss.estimate == pytest.approx(1.0)
    assert thresholds([coding, general]) == {"coding": {"en": 0.721}, "general": {"en": 0.011}}
    (strict, _) = propose(records, config=config, prices=prices, max_loss=0.0)
    assert strict.threshold == pytest.approx(0.581)
    # the Wilson upper bound is stricter; too few pairs: no proposal
    (upper, _) = propose(records, config=config, prices=prices, max_loss=0.05, bound="upper")
    assert upper.threshold is not None and upper.threshold < 0.7
    (few, _) = propose(records, config=config, prices=prices, min_pairs=41)
    assert few.threshold is None and thresholds([few]) == {}
    # labelled hard prompts of the group bound the threshold too
    hard = [_intent("coding", c) for c in (0.2, 0.9, 0.95, 0.97)]
    (guarded, _) = propose(records, config=config, prices=prices, hard=hard, max_hard=0.05)
    assert guarded.threshold is not None and guarded.threshold <= 0.2 and guarded.hard_routed_cheap == 0


def test_margin_counts_small_score_gaps_as_ties() -> None:
    records = [PairRecord("general", "en", i / 100, 0.9, 7.0, 8.0, "t", 10, 10, 10) for i in range(40)]
    config = _config()
    prices = Prices.from_config(config)
    assert propose(records, config=config, prices=prices, max_loss=0.02)[0].threshold == 0.0
    assert propose(records, config=config, prices=prices, margin=1.0)[0].threshold == pytest.approx(0.391)


def test_fragment_applies_through_the_config() -> None:
    records = _records("coding", "en", [0.9] * 5, [i / 100 for i in range(40)])
    config = _config()
    proposals = propose(records, config=config, prices=Prices.from_config(config))
    fragment = yaml_fragment(proposals, header="test\nsecond line")
    assert fragment.startswith("# test\n# second line\nrouting:")
    parsed = yaml.safe_load(fragment)
    merged = RoutingConfig.model_validate(apply_fragment(CONFIG, parsed))
    assert merged.routing.complexity_thresholds == {"coding": {"en": 0.391}}
    assert tier_for(_intent("coding", 0.3), merged) == "cheap"
    assert tier_for(_intent("coding", 0.3), config) == "strong"
    assert with_thresholds(merged, {}).routing.complexity_thresholds == {}
    # a config that already runs thresholds: "now" is its entry
    (again,) = propose(records, config=merged, prices=Prices.from_config(merged))
    assert again.current_threshold == 0.391 and again.threshold == 0.391


def test_pairwise_jsonl_rows(tmp_path: Path) -> None:
    path = tmp_path / "pairs.jsonl"
    path.write_text(
        json.dumps(
            {"prompt": "hi there", "cheap_score": 1, "strong_score": 0.5, "source": "s", "split": "heldout"}
        )
        + "\n\n"
        + json.dumps({"prompt": "안녕", "cheap_score": 2, "strong_score": 9, "cheap_output_tokens": 5}) + "\n"
    )

    def classify(text: str) -> IntentResult:
        return _intent("small_talk", 0.1, "ko" if text == "안녕" else "en")

    rows = load_pairwise_jsonl(path, classify=classify, count_tokens=len)
    assert [(r.language, r.split, r.source, r.prompt_tokens, r.cheap_worse()) for r in rows] == [
        ("en", "heldout", "s", 8, False), ("ko", "calib", "pairs", 2, True)
    ]
    assert len(load_pairwise_jsonl(path, classify=classify, count_tokens=len, split="heldout")) == 1
    path.write_text('{"prompt": "x"}\n')
    with pytest.raises(ValueError, match=r"pairs\.jsonl:1"):
        load_pairwise_jsonl(path, classify=classify, count_tokens=len)


def test_evaluate_tallies_per_language_and_source() -> None:
    records = [
        PairRecord("general", "en", 0.1, 0.9, 8, 8, "a", 10, 10, 10),
        PairRecord("general", "en", 0.7, 0.9, 8, 8, "a", 10, 10, 10),
        PairRecord("general", "ko", 0.1, 0.9, 2, 8, "b", 10, 10, 10),
    ]
    config = _config()
    ev = evaluate(records, config=config, prices=Prices.from_config(config))
    o = ev.overall
    assert (o.n, o.as_good, o.as_good_routed_cheap, o.worse_routed_cheap) == (3, 2, 1, 1)
    assert ev.by_language["ko"].loss.estimate == 1.0 and ev.by_source["a"].as_good_cheap_rate.estimate == 0.5


# ---------------------------------------------------------------- independent figures (CI floors, #21)


@pytest.fixture(scope="module")
def classifier() -> object:
    from gateway.intent import IntentClassifier

    return IntentClassifier.load()


def test_public_pairs_are_permissive_and_split_by_prompt() -> None:
    """The shipped pairs come only from the permissively licensed sources of tests/data/routing/SOURCES.md
    (arena-bench: Apache-2.0, LLMFAO: CC BY 4.0; AlpacaEval's CC BY-NC data was removed), and no prompt
    is in both splits (calibration never sees a held-out prompt)."""
    rows = [json.loads(line) for line in PAIRS.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert {str(r["source"]).split("/")[0] for r in rows} == {"arena-bench", "llmfao"}
    calib = {r["prompt"] for r in rows if r["split"] == "calib"}
    heldout = {r["prompt"] for r in rows if r["split"] == "heldout"}
    assert calib and heldout and not calib & heldout
    assert len(calib) + len(heldout) == len({r["prompt"] for r in rows})


def test_independent_heldout_figures_hold(classifier: object) -> None:
    """Thresholds fitted on the calib split of the public pairs (arena-bench + LLMFAO, + the own train
    split's hard prompts), figures on the held-out split (371 pairs, 170 prompts). Measured on 2026-12-07
    with the retrained intent model (puzzles, fast stage; docs/routing.md): today's rule sends 2 of 371
    held-out prompts cheap (as-good→cheap 0.000, loss 0.005, saving 0.5 %); the calibrated thresholds
    0.029 / 0.019 / 2.8 %. These are mostly hard prompts, so the figures rest on few prompts: the floors
    are bounds — calibrated at least as cheap and as often right to go cheap as today's rule, loss within
    the fit's budget (≤ 0.035 against --max-loss 0.05), saving ≥ 0.02, as-good→cheap ≥ 0.015 — and no
    more hard prompts of the own labelled test split routed cheap than today's rule."""
    from gateway.config.routing import load_config
    from gateway.providers.tokens import count_text

    classify = classifier.classify  # type: ignore[attr-defined]
    calib = load_pairwise_jsonl(PAIRS, classify=classify, count_tokens=count_text, split="calib")
    heldout = load_pairwise_jsonl(PAIRS, classify=classify, count_tokens=count_text, split="heldout")
    assert len(calib) > 300 and len(heldout) > 300
    rows = [json.loads(line) for line in LABELLED.read_text(encoding="utf-8").splitlines() if line.strip()]
    hard = [classify(r["text"]) for r in rows if r["tier"] == "strong" and r["split"] == "train"]
    config = load_config(ROOT / "config" / "prism.yaml")
    report = calibrate_and_evaluate(calib, heldout, config=config, hard=hard)
    figures, today_figures = report.calibrated.overall, report.today.overall
    assert figures.saving >= today_figures.saving
    assert figures.as_good_cheap_rate.estimate >= today_figures.as_good_cheap_rate.estimate
    assert figures.loss.estimate <= 0.035
    assert figures.saving >= 0.02
    assert figures.as_good_cheap_rate.estimate >= 0.015
    test_hard = [classify(r["text"]) for r in rows if r["tier"] == "strong" and r["split"] == "test"]
    today = with_thresholds(report.config, {})
    assert sum(tier_for(h, report.config) == "cheap" for h in test_hard) <= sum(
        tier_for(h, today) == "cheap" for h in test_hard
    )


def test_shadow_pair_rows_carry_the_classification() -> None:
    from gateway.experiments.shadow import ShadowResults

    results = ShadowResults()
    pair = results.new_pair(request_id="r1", alias="auto", shadow_model="big", streamed=False)
    keys = ("intent", "language", "complexity", "confidence")
    assert {k: pair.row()[k] for k in keys} == dict.fromkeys(keys)
    pair.intent = _intent("coding", 0.25, "ko", confidence=0.8)
    row = pair.row()
    assert tuple(row[k] for k in keys) == ("coding", "ko", 0.25, 0.8)
