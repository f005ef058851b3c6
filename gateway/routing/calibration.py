"""Calibrating the cheap tier from judged pairs (issue #21, ``make calibrate-routing``).

A **pair** is one prompt answered by a cheap-tier and a strong-tier model, with a judge's score for each
answer and the prompt's classification (intent, language, complexity, confidence). Two sources:

* Prism's own shadow pairs (``shadow_results`` joined with ``shadow_judgements`` on ``pair_id``, the
  classification recorded with the pair since migration 0014): ``load_shadow_pairs``;
* public pairwise judge data, JSONL (``load_pairwise_jsonl``; format in docs/routing.md): the prompts are
  classified here with the shipped classifier.

For every (intent, language) with at least ``min_pairs`` pairs, ``propose`` picks the cheap-tier
complexity threshold ``t`` (a confident prompt with complexity < t goes cheap) that saves the most under
the operator's ``max_loss``, where the **quality loss** is the share of the group's prompts whose answer
gets worse than with the strong tier: routed cheap *and* the cheap answer was judged worse (score lower
than the strong answer's by more than ``margin``), and which sends at most ``max_hard`` of the group's
labelled hard prompts cheap. Both only grow with ``t``, so the proposal is the largest feasible ``t``
(each candidate sits just above one observed complexity). ``bound="upper"``
holds an upper bound under ``max_loss`` instead of the point estimate (for small groups): the Wilson
upper bound of the worse rate among the prompts routed cheap, times the share routed cheap.

``evaluate`` replays records through the router's own ``tier_for`` with a given config, so the figures
are those of the rule the gateway runs. Nothing here is imported by the request path.
"""

from __future__ import annotations

import json
import math
import os
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from gateway.config.routing import ModelConfig, RoutingConfig
from gateway.db.models import ShadowJudgement, ShadowResult
from gateway.experiments.stats import Interval, wilson_interval
from gateway.intent import IntentResult
from gateway.routing.router import calibrated_threshold, tier_for

Bound = Literal["point", "upper"]


@dataclass(frozen=True, slots=True)
class PairRecord:
    """One judged cheap/strong pair with the prompt's classification."""

    intent: str
    language: str
    complexity: float
    confidence: float
    cheap_score: float
    strong_score: float
    source: str
    prompt_tokens: int = 0
    cheap_output_tokens: int = 0
    strong_output_tokens: int = 0
    split: str = "calib"

    def cheap_worse(self, margin: float = 0.0) -> bool:
        return self.cheap_score < self.strong_score - margin

    def as_intent(self) -> IntentResult:
        return IntentResult(
            label=self.intent, confidence=self.confidence, complexity=self.complexity, language=self.language
        )


@dataclass(frozen=True, slots=True)
class Prices:
    """USD per million tokens of the cheapest model of the cheapest and of the strongest tier (the
    models ``auto`` picks first)."""

    cheap_input: float
    cheap_output: float
    strong_input: float
    strong_output: float
    cheap_model: str = ""
    strong_model: str = ""

    @classmethod
    def from_config(
        cls,
        config: RoutingConfig,
        *,
        env: Mapping[str, str] | None = None,
        cheap: str | None = None,
        strong: str | None = None,
    ) -> Prices:
        """The cheapest enabled model (``enabled_if_env`` set in ``env``, default the process's) of the
        cheapest and of the strongest tier, or the models named by ``cheap`` / ``strong``."""
        tiers = config.routing.tiers
        environ = os.environ if env is None else env

        def enabled(m: ModelConfig) -> bool:
            return not m.enabled_if_env or bool(environ.get(m.enabled_if_env))

        def cheapest(tier: str) -> tuple[str, float, float]:
            named = cheap if tier == tiers[0] else strong
            models = sorted(
                (
                    (m.price_input_per_mtok + m.price_output_per_mtok, name, m)
                    for name, m in config.models.items()
                    if name == named or (named is None and m.tier == tier and enabled(m))
                ),
                key=lambda item: (item[0], item[1]),
            )
            if not models:
                raise ValueError(f"no enabled model {named or 'of tier ' + repr(tier)} in the routing config")
            _, name, model = models[0]
            return name, model.price_input_per_mtok, model.price_output_per_mtok

        c_name, c_in, c_out = cheapest(tiers[0])
        s_name, s_in, s_out = cheapest(tiers[-1])
        return cls(c_in, c_out, s_in, s_out, cheap_model=c_name, strong_model=s_name)

    def costs(self, r: PairRecord) -> tuple[float, float]:
        """(cheap, strong) cost of answering the record's prompt, USD."""
        cheap = (r.prompt_tokens * self.cheap_input + r.cheap_output_tokens * self.cheap_output) / 1e6
        strong = (r.prompt_tokens * self.strong_input + r.strong_output_tokens * self.strong_output) / 1e6
        return cheap, strong


@dataclass(frozen=True, slots=True)
class Proposal:
    intent: str
    language: str
    n: int
    threshold: float | None
    """None: too few pairs, no entry (today's rule stays)."""
    current_threshold: float
    """Today's effective threshold for this intent (``strong_complexity`` if mapped cheap, else 0)."""
    routed_cheap: int
    worse_routed_cheap: int
    as_good: int
    as_good_routed_cheap: int
    loss: Interval
    """Share of the group's prompts whose answer gets worse (routed cheap and judged worse)."""
    saving: float
    """Expected cost saving vs sending the group to the strong tier (share of its strong-tier cost)."""
    current_loss: Interval
    current_saving: float
    current_as_good_routed_cheap: int = 0
    hard: int = 0
    """Labelled hard prompts (``hard``) classified into this group…"""
    hard_routed_cheap: int = 0
    """…and how many of them the proposed threshold sends cheap."""


@dataclass(slots=True)
class GroupFigures:
    """Routing figures of a set of pairs under one config (``evaluate``)."""

    n: int = 0
    routed_cheap: int = 0
    as_good: int = 0
    as_good_routed_cheap: int = 0
    worse: int = 0
    worse_routed_cheap: int = 0
    strong_cost: float = 0.0
    routed_cost: float = 0.0

    def add(self, *, cheap: bool, worse: bool, cost_cheap: float, cost_strong: float) -> None:
        self.n += 1
        self.routed_cheap += cheap
        self.worse += worse
        self.as_good += not worse
        self.worse_routed_cheap += cheap and worse
        self.as_good_routed_cheap += cheap and not worse
        self.strong_cost += cost_strong
        self.routed_cost += cost_cheap if cheap else cost_strong

    @property
    def as_good_cheap_rate(self) -> Interval:
        """Of the prompts where the cheap answer was as good: the share routed cheap (target ≥ 0.50)."""
        return wilson_interval(self.as_good_routed_cheap, self.as_good)

    @property
    def worse_cheap_rate(self) -> Interval:
        """Of the prompts where the cheap answer was worse: the share routed cheap anyway."""
        return wilson_interval(self.worse_routed_cheap, self.worse)

    @property
    def loss(self) -> Interval:
        """Share of all prompts whose answer got worse than with the strong tier."""
        return wilson_interval(self.worse_routed_cheap, self.n)

    @property
    def saving(self) -> float:
        return 1 - self.routed_cost / self.strong_cost if self.strong_cost > 0 else 0.0


@dataclass(slots=True)
class Evaluation:
    overall: GroupFigures = field(default_factory=GroupFigures)
    by_language: dict[str, GroupFigures] = field(default_factory=lambda: defaultdict(GroupFigures))
    by_source: dict[str, GroupFigures] = field(default_factory=lambda: defaultdict(GroupFigures))


# ---------------------------------------------------------------------------------------------- loading


def load_pairwise_jsonl(
    path: Path,
    *,
    classify: Callable[[str], IntentResult],
    count_tokens: Callable[[str], int],
    split: str | None = None,
) -> list[PairRecord]:
    """Public pairwise judge data (docs/routing.md, "Pairwise data format"): one JSON object a line with
    ``prompt``, ``cheap_score`` and ``strong_score`` (any scale, higher is better); optional ``lang``
    (else the classifier's), ``source``, ``split``, ``prompt_tokens``, ``cheap_output_tokens``,
    ``strong_output_tokens``. ``split`` keeps only rows of that split."""
    records = []
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            prompt = str(row["prompt"])
            cheap_score, strong_score = float(row["cheap_score"]), float(row["strong_score"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}:{line_no}: not a pair row ({exc})") from exc
        row_split = str(row.get("split", "calib"))
        if split is not None and row_split != split:
            continue
        result = classify(prompt)
        records.append(
            PairRecord(
                intent=result.label,
                language=str(row.get("lang") or result.language),
                complexity=result.complexity,
                confidence=result.confidence,
                cheap_score=cheap_score,
                strong_score=strong_score,
                source=str(row.get("source") or path.stem),
                prompt_tokens=int(row.get("prompt_tokens") or count_tokens(prompt)),
                cheap_output_tokens=int(row.get("cheap_output_tokens") or 0),
                strong_output_tokens=int(row.get("strong_output_tokens") or 0),
                split=row_split,
            )
        )
    return records


async def load_shadow_pairs(
    engine: AsyncEngine, *, config: RoutingConfig, alias: str | None = None, source: str = "prism-shadow"
) -> list[PairRecord]:
    """Prism's own judged shadow pairs: one model of the cheapest tier and one of a higher tier (tiers
    from ``config``), both scored by the judge, the request classified. Others are skipped."""
    tiers = config.routing.tiers
    tier_of = {name: model.tier for name, model in config.models.items()}
    stmt = (
        select(ShadowResult, ShadowJudgement)
        .join(ShadowJudgement, ShadowJudgement.pair_id == ShadowResult.pair_id)
        .where(
            ShadowJudgement.primary_score.is_not(None),
            ShadowJudgement.shadow_score.is_not(None),
            ShadowResult.intent.is_not(None),
            ShadowResult.complexity.is_not(None),
        )
        .order_by(ShadowResult.id)
    )
    if alias is not None:
        stmt = stmt.where(ShadowResult.alias == alias)
    records = []
    async with AsyncSession(engine) as session:
        result = await session.execute(stmt)
        for pair, judgement in result:
            primary_tier, shadow_tier = tier_of.get(pair.primary_model), tier_of.get(pair.shadow_model)
            if primary_tier is None or shadow_tier is None:
                continue  # a model no longer configured
            if (primary_tier == tiers[0]) == (shadow_tier == tiers[0]):
                continue  # unknown model, or not one cheap and one stronger answer
            primary_score = float(judgement.primary_score or 0)
            shadow_score = float(judgement.shadow_score or 0)
            if primary_tier == tiers[0]:
                cheap_score, strong_score = primary_score, shadow_score
                cheap_out, strong_out = pair.primary_completion_tokens, pair.shadow_completion_tokens
            else:
                cheap_score, strong_score = shadow_score, primary_score
                cheap_out, strong_out = pair.shadow_completion_tokens, pair.primary_completion_tokens
            records.append(
                PairRecord(
                    intent=str(pair.intent),
                    language=pair.language or "en",
                    complexity=float(pair.complexity or 0.0),
                    confidence=float(pair.confidence if pair.confidence is not None else 1.0),
                    cheap_score=cheap_score,
                    strong_score=strong_score,
                    source=source,
                    prompt_tokens=pair.primary_prompt_tokens,
                    cheap_output_tokens=cheap_out,
                    strong_output_tokens=strong_out,
                )
            )
    return records


# -------------------------------------------------------------------------------------------- proposing


def current_threshold(config: RoutingConfig, intent: str, language: str) -> float:
    """The running rule as a threshold: the config's calibrated entry, else ``strong_complexity`` if the
    intent maps to the cheapest tier, else 0."""
    smart = config.routing
    probe = IntentResult(label=intent, confidence=1.0, complexity=0.0, language=language)
    entry = calibrated_threshold(probe, config)
    if entry is not None:
        return entry
    mapped = smart.intent_tiers.get(intent, smart.default_tier)
    return smart.strong_complexity if mapped == smart.tiers[0] else 0.0


def _candidates(complexities: Iterable[float]) -> list[float]:
    """0, and just above every observed complexity (3 decimals, as written to YAML), capped at 1."""
    ups = {min(1.0, math.floor(c * 1000 + 1) / 1000) for c in complexities}
    return sorted({0.0, *ups})


def _measure(
    group: Sequence[PairRecord], t: float, *, prices: Prices, margin: float, low_confidence: float
) -> tuple[int, int, int, int, float]:
    routed = worse = as_good = as_good_cheap = 0
    strong_total = saved = 0.0
    for r in group:
        cheap = r.confidence >= low_confidence and r.complexity < t
        is_worse = r.cheap_worse(margin)
        cost_cheap, cost_strong = prices.costs(r)
        strong_total += cost_strong
        as_good += not is_worse
        if cheap:
            routed += 1
            worse += is_worse
            as_good_cheap += not is_worse
            saved += cost_strong - cost_cheap
    return routed, worse, as_good, as_good_cheap, (saved / strong_total if strong_total > 0 else 0.0)


def propose(
    records: Sequence[PairRecord],
    *,
    config: RoutingConfig,
    prices: Prices,
    max_loss: float = 0.05,
    margin: float = 0.0,
    min_pairs: int = 30,
    bound: Bound = "point",
    hard: Sequence[IntentResult] = (),
    max_hard: float = 0.05,
) -> list[Proposal]:
    """Per (intent, language): the cheap-tier threshold with the largest saving whose quality loss (its
    point estimate, or its Wilson upper bound with ``bound="upper"``) is at most ``max_loss``, and which
    sends at most ``max_hard`` of the group's labelled hard prompts (``hard``: the classifications of
    prompts labelled as needing the strong tier) cheap."""
    groups: dict[tuple[str, str], list[PairRecord]] = defaultdict(list)
    for r in records:
        groups[(r.intent, r.language)].append(r)
    low_confidence = config.routing.low_confidence
    proposals = []
    for (intent, language), group in sorted(groups.items()):
        n = len(group)
        now = current_threshold(config, intent, language)
        _, c_worse, _, c_good_cheap, c_saving = _measure(
            group, now, prices=prices, margin=margin, low_confidence=low_confidence
        )
        group_hard = [h.complexity for h in hard if h.label == intent and h.language == language
                      and h.confidence >= low_confidence]
        n_hard = sum(h.label == intent and h.language == language for h in hard)
        best: tuple[float, tuple[int, int, int, int, float]] | None = None
        if n >= min_pairs:
            for t in _candidates(r.complexity for r in group):
                measured = _measure(group, t, prices=prices, margin=margin, low_confidence=low_confidence)
                routed, worse = measured[0], measured[1]
                # upper: the Wilson upper bound of the worse rate among the prompts routed cheap, times
                # the share routed cheap (0 when nothing goes cheap: t = 0 is always feasible)
                if bound == "point" or not routed:
                    loss = worse / n
                else:
                    loss = wilson_interval(worse, routed).high * routed / n
                hard_cheap = sum(c < t for c in group_hard)
                if loss > max_loss or (
                    n_hard and hard_cheap / n_hard > max_hard
                ):
                    break  # both only grow with t
                best = (t, measured)
        t_best, (routed, worse, as_good, as_good_cheap, saving) = (
            best if best is not None else (None, _measure(group, now, prices=prices, margin=margin,
                                                          low_confidence=low_confidence))
        )
        proposals.append(
            Proposal(
                intent=intent,
                language=language,
                n=n,
                threshold=t_best,
                current_threshold=now,
                routed_cheap=routed,
                worse_routed_cheap=worse,
                as_good=as_good,
                as_good_routed_cheap=as_good_cheap,
                loss=wilson_interval(worse, n),
                saving=saving,
                current_loss=wilson_interval(c_worse, n),
                current_saving=c_saving,
                current_as_good_routed_cheap=c_good_cheap,
                hard=n_hard,
                hard_routed_cheap=sum(c < (t_best if t_best is not None else now) for c in group_hard),
            )
        )
    return proposals


def thresholds(proposals: Iterable[Proposal]) -> dict[str, dict[str, float]]:
    """The ``routing.complexity_thresholds`` mapping of the proposals that have a threshold."""
    out: dict[str, dict[str, float]] = {}
    for p in proposals:
        if p.threshold is not None:
            out.setdefault(p.intent, {})[p.language] = round(p.threshold, 3)
    return out


def yaml_fragment(proposals: Sequence[Proposal], *, header: str = "") -> str:
    """The fragment the operator merges under the routing YAML's ``routing:`` key, then reloads."""
    import yaml

    lines = [f"# {line}" for line in header.splitlines()]
    body = yaml.safe_dump({"routing": {"complexity_thresholds": thresholds(proposals)}}, sort_keys=True)
    return "\n".join([*lines, body.rstrip("\n")]) + "\n"


def apply_fragment(config_data: Mapping[str, Any], fragment: Mapping[str, Any]) -> dict[str, Any]:
    """``config_data`` (a parsed routing YAML) with the fragment's ``routing.complexity_thresholds``
    replacing its own (the rest is untouched)."""
    merged = dict(config_data)
    routing = dict(merged.get("routing") or {})
    proposed = (fragment.get("routing") or {}).get("complexity_thresholds") or {}
    routing["complexity_thresholds"] = dict(proposed)
    merged["routing"] = routing
    return merged


def format_table(proposals: Sequence[Proposal]) -> str:
    head = (f"{'intent':<14}{'lang':<6}{'n':>5}  {'now':>5} {'→ t':>6}  {'cheap':>6}  "
            f"{'loss [95% CI]':<20}{'saving':>7}  {'as-good→cheap':>14}  {'hard→cheap':>10}  "
            f"{'now: loss / saving / as-good→cheap':>34}")
    rows = [head, "-" * len(head)]
    for p in proposals:
        t = "  keep" if p.threshold is None else f"{p.threshold:>6.3f}"
        good = f"{p.as_good_routed_cheap}/{p.as_good}"
        hard = f"{p.hard_routed_cheap}/{p.hard}"
        rows.append(
            f"{p.intent:<14}{p.language:<6}{p.n:>5}  {p.current_threshold:>5.2f} {t}  "
            f"{p.routed_cheap / p.n if p.n else 0:>6.2f}  "
            f"{p.loss.estimate:.3f} [{p.loss.low:.3f}, {p.loss.high:.3f}]  {p.saving:>6.1%}  {good:>14}  "
            f"{hard:>10}  {p.current_loss.estimate:>12.3f} / {p.current_saving:>5.1%} / "
            f"{p.current_as_good_routed_cheap}/{p.as_good}"
        )
    return "\n".join(rows)


# ------------------------------------------------------------------------------------------- evaluating


def evaluate(
    records: Iterable[PairRecord], *, config: RoutingConfig, prices: Prices, margin: float = 0.0
) -> Evaluation:
    """Route every record with the router's ``tier_for`` under ``config`` and tally the figures overall,
    per language and per source."""
    cheapest = config.routing.tiers[0]
    ev = Evaluation()
    for r in records:
        cheap = tier_for(r.as_intent(), config) == cheapest
        cost_cheap, cost_strong = prices.costs(r)
        worse = r.cheap_worse(margin)
        for figures in (ev.overall, ev.by_language[r.language], ev.by_source[r.source]):
            figures.add(cheap=cheap, worse=worse, cost_cheap=cost_cheap, cost_strong=cost_strong)
    return ev


# ------------------------------------------------------------------------------ calibrate, then hold out


@dataclass(slots=True)
class HeldOutReport:
    """``calibrate_and_evaluate``: thresholds fitted on one split, figures on another."""

    proposals: list[Proposal]
    today: Evaluation
    calibrated: Evaluation
    config: RoutingConfig
    """The routing config with the proposed thresholds applied."""


def with_thresholds(config: RoutingConfig, mapping: Mapping[str, Mapping[str, float]]) -> RoutingConfig:
    """``config`` with ``routing.complexity_thresholds`` replaced (validated like a reload)."""
    data = config.model_dump(mode="python")
    data["routing"]["complexity_thresholds"] = {k: dict(v) for k, v in mapping.items()}
    return RoutingConfig.model_validate(data)


def calibrate_and_evaluate(
    calib: Sequence[PairRecord],
    heldout: Sequence[PairRecord],
    *,
    config: RoutingConfig,
    hard: Sequence[IntentResult] = (),
    max_loss: float = 0.05,
    max_hard: float = 0.05,
    min_pairs: int = 30,
    bound: Bound = "point",
    margin: float = 0.0,
) -> HeldOutReport:
    prices = Prices.from_config(config)
    today = with_thresholds(config, {})
    proposals = propose(calib, config=today, prices=prices, max_loss=max_loss, margin=margin,
                        min_pairs=min_pairs, bound=bound, hard=hard, max_hard=max_hard)
    calibrated = with_thresholds(config, thresholds(proposals))
    return HeldOutReport(
        proposals=proposals,
        today=evaluate(heldout, config=today, prices=prices, margin=margin),
        calibrated=evaluate(heldout, config=calibrated, prices=prices, margin=margin),
        config=calibrated,
    )
