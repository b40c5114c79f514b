"""Reads of the scoring app, for the arena's leaderboard and stats page and the per-character page.

Everything here takes and returns plain data; ``None`` stands for "not computed".
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

from django.conf import settings
from django.core.cache import cache
from django.db.models import Count, Max

from generation.models import Character, CharacterReference, ModelVariant
from generation.scoring.elo import Duel, EloParams, elo_replay
from generation.scoring.files import AESTHETIC, ALIGNMENT, CCIP, KINDS, REWARD, reward_judge_info, scorer_state
from generation.scoring.models import ImageScore
from ratings.intervals import mean, t_interval, wilson_interval

JUDGES = (CCIP, AESTHETIC, ALIGNMENT, REWARD)
JUDGE_LABELS = {CCIP: "CCIP character similarity", AESTHETIC: "aesthetic score", ALIGNMENT: "prompt alignment (CLIP score)",
                REWARD: "reward model (trained on votes)"}


def judge_label(kind: str) -> str:
    """The judge's label; the reward model's carries the name it was registered under."""
    if kind == REWARD:
        info = reward_judge_info()
        if info and info.get("name"):
            return f"reward model “{info['name']}” (trained on votes)"
    return JUDGE_LABELS[kind]


def _ccip_summary(values: Sequence[float], ratios: Sequence[float]) -> dict:
    """Per-image CCIP mean differences and same-character ratios → the model's figures.

    Each image counts once: the mean difference is the mean of the per-image means (t-interval), the ratio the
    mean of the per-image ratios with a Wilson interval over the images (conservative for fractional ratios).
    """
    n = len(values)
    return {
        "ccip_mean": mean(values),
        "ccip_mean_ci": t_interval(values),
        "ccip_ratio": mean(ratios),
        "ccip_ratio_ci": wilson_interval(sum(ratios), n) if n else None,
        "ccip_n": n,
    }


def _empty_scores() -> dict:
    return {
        **_ccip_summary([], []),
        "aesthetic_mean": None, "aesthetic_ci": None, "aesthetic_n": 0,
        "alignment_mean": None, "alignment_ci": None, "alignment_n": 0,
        "reward_mean": None, "reward_ci": None, "reward_n": 0,
    }


def _scores_state(kind: str | None = None) -> str:
    """A key that changes whenever stored scores (of ``kind``) change: row count, last write, last id."""
    rows = ImageScore.objects.all() if kind is None else ImageScore.objects.filter(kind=kind)
    state = rows.aggregate(n=Count("id"), last=Max("computed_at"), top=Max("id"))
    return hashlib.sha256(repr(sorted(state.items())).encode()).hexdigest()[:32]


def model_scores() -> dict[int, dict]:
    """Per model variant (every variant, keyed by id): ccip_mean, ccip_mean_ci, ccip_ratio, ccip_ratio_ci, ccip_n,
    aesthetic_mean, aesthetic_ci, aesthetic_n, alignment_mean, alignment_ci, alignment_n, reward_mean, reward_ci,
    reward_n (None where not computed;
    intervals are 95% (low, high) tuples). Two queries; the aggregation is cached until a score changes."""
    variant_ids = list(ModelVariant.objects.order_by("id").values_list("id", flat=True))
    key = f"scoring:model_scores:{_scores_state()}"
    per_variant = cache.get(key)
    if per_variant is None:
        per_variant = _model_scores_uncached()
        cache.set(key, per_variant, 300)
    return {variant_id: per_variant.get(variant_id) or _empty_scores() for variant_id in variant_ids}


def _model_scores_uncached() -> dict[int, dict]:
    values: dict[tuple[int, str], list[float]] = defaultdict(list)
    ratios: dict[int, list[float]] = defaultdict(list)
    for variant_id, kind, value, ratio in ImageScore.objects.values_list("image__variant_id", "kind", "value", "same_ratio"):
        values[(variant_id, kind)].append(value)
        if kind == CCIP:
            ratios[variant_id].append(ratio)
    result = {}
    for variant_id in sorted({v for v, _ in values}):
        row = _empty_scores()
        row.update(_ccip_summary(values.get((variant_id, CCIP), []), ratios.get(variant_id, [])))
        for kind in (AESTHETIC, ALIGNMENT, REWARD):
            vals = values.get((variant_id, kind), [])
            row[f"{kind}_mean"] = mean(vals)
            row[f"{kind}_ci"] = t_interval(vals)
            row[f"{kind}_n"] = len(vals)
        result[variant_id] = row
    return result


def character_scores(*, character_id: int | None = None) -> dict[tuple[int, int], dict]:
    """CCIP figures per (variant id, character id) that has scored images: variant_id, variant_name,
    character_id, character_name, ccip_mean, ccip_mean_ci, ccip_ratio, ccip_ratio_ci, ccip_n."""
    rows = ImageScore.objects.filter(kind=CCIP)
    if character_id is not None:
        rows = rows.filter(image__prompt__character_id=character_id)
    grouped: dict[tuple[int, int], tuple[list[float], list[float]]] = defaultdict(lambda: ([], []))
    names: dict[tuple[int, int], tuple[str, str]] = {}
    for variant_id, variant_name, char_id, char_name, value, ratio in rows.values_list(
        "image__variant_id", "image__variant__name", "image__prompt__character_id", "image__prompt__character__name",
        "value", "same_ratio",
    ):
        if char_id is None:
            continue
        key = (variant_id, char_id)
        grouped[key][0].append(value)
        grouped[key][1].append(ratio)
        names[key] = (variant_name, char_name)
    result = {}
    for key in sorted(grouped):
        vals, rats = grouped[key]
        result[key] = {
            "variant_id": key[0], "variant_name": names[key][0],
            "character_id": key[1], "character_name": names[key][1],
            **_ccip_summary(vals, rats),
        }
    return result


def characters_with_references() -> list[dict]:
    """Characters that have reference images: id, name, tags, references, scored_images."""
    scored = dict(
        ImageScore.objects.filter(kind=CCIP).values("image__prompt__character_id")
        .annotate(n=Count("id")).values_list("image__prompt__character_id", "n")
    )
    return [
        {"id": c.id, "name": c.name, "tags": c.tags, "references": c.n_refs, "scored_images": scored.get(c.id, 0)}
        for c in Character.objects.annotate(n_refs=Count("references")).filter(n_refs__gt=0).order_by("name")
    ]


# --- character-similarity Elo -----------------------------------------------------------------------------------

def character_elo_params() -> EloParams:
    return EloParams(
        k=float(settings.CHARACTER_ELO_K),
        scale=float(settings.ELO_SCALE),
        base=float(settings.ELO_BASE),
        initial=float(settings.ELO_INITIAL),
    )


def character_duels(*, tie_margin: float | None = None) -> list[Duel]:
    """The automatic duels: for every character prompt and seed/settings (same prompt and settings_key), every
    pair of images from two models, both scored by the same CCIP scorer. The lower mean difference to the
    references wins; a difference within ``tie_margin`` (settings.CHARACTER_ELO_TIE_MARGIN) is a tie. Players are
    variant ids; a duel's time is when its later image was made. Sorted by time, then prompt, settings, models."""
    margin = float(settings.CHARACTER_ELO_TIE_MARGIN if tie_margin is None else tie_margin)
    groups: dict[tuple[int, str], list[tuple[int, float, str, float]]] = defaultdict(list)
    for prompt_id, key, variant_id, value, scorer_hash, created in ImageScore.objects.filter(kind=CCIP).values_list(
        "image__prompt_id", "image__settings_key", "image__variant_id", "value", "scorer_hash", "image__created_at"
    ):
        groups[(prompt_id, key)].append((variant_id, value, scorer_hash, created.timestamp()))
    keyed = []
    for (prompt_id, key), members in groups.items():
        members.sort()
        for i in range(len(members)):
            for j in range(i + 1, len(members)):
                a, b = members[i], members[j]
                if a[0] == b[0] or a[2] != b[2]:
                    continue
                diff = a[1] - b[1]
                score_a = 0.5 if abs(diff) <= margin else (1.0 if diff < 0 else 0.0)
                keyed.append(((max(a[3], b[3]), prompt_id, key, a[0], b[0]), Duel(a[0], b[0], score_a, max(a[3], b[3]))))
    keyed.sort(key=lambda item: item[0])
    return [duel for _, duel in keyed]


def character_elo(*, tie_margin: float | None = None) -> dict[int, dict]:
    """Per variant id with at least one automatic duel: {"elo", "twa_elo", "duels", "wins", "losses", "ties"}."""
    params = character_elo_params()
    margin = float(settings.CHARACTER_ELO_TIE_MARGIN if tie_margin is None else tie_margin)
    key = "scoring:character_elo:" + hashlib.sha256(repr((_scores_state(CCIP), params, margin)).encode()).hexdigest()[:32]
    hit = cache.get(key)
    if hit is not None:
        return hit
    standings = elo_replay(character_duels(tie_margin=margin), params)
    result = {
        variant_id: {"elo": s.elo, "twa_elo": s.twa_elo, "duels": s.duels, "wins": s.wins, "losses": s.losses,
                     "ties": s.ties}
        for variant_id, s in sorted(standings.items())
    }
    cache.set(key, result, 300)
    return result


# --- agreement with people --------------------------------------------------------------------------------------

def image_score_values(image_ids: Iterable[int]) -> dict[int, dict[str, float]]:
    """{image id: {kind: value}} for the images that have scores."""
    values: dict[int, dict[str, float]] = defaultdict(dict)
    for image_id, kind, value in ImageScore.objects.filter(image_id__in=list(image_ids)).values_list("image_id", "kind", "value"):
        values[image_id][kind] = value
    return dict(values)


def judge_agreement(duels: Sequence[tuple[int, int, str]]) -> dict[str, dict]:
    """How often each automatic judge prefers the image people chose.

    ``duels``: (left image id, right image id, winner) with winner "left" or "right" (the caller leaves ties
    and "both bad" out). A judge prefers the lower CCIP difference, the higher aesthetic score, the higher
    alignment, the higher reward-model score. (The reward model's own training votes are among the duels when it
    was trained on this arena's log: its held-out accuracy, in ``reward_judge``, is the figure free of that.) A duel is skipped for a judge when either image lacks its score or the two scores are equal.
    Returns {judge: {"label", "agreed", "total", "share", "share_ci", "skipped"}} with share None and share_ci
    None when total is 0; share_ci is the 95% Wilson interval.
    """
    for duel in duels:
        if len(duel) != 3 or duel[2] not in ("left", "right"):
            raise ValueError(f"each duel is (left id, right id, 'left' | 'right'), got {duel!r}")
    values = image_score_values({i for d in duels for i in d[:2]})
    result = {}
    for judge in JUDGES:
        agreed = total = skipped = 0
        for left, right, winner in duels:
            a = values.get(left, {}).get(judge)
            b = values.get(right, {}).get(judge)
            if a is None or b is None or a == b:
                skipped += 1
                continue
            judge_left = a < b if judge == CCIP else a > b
            total += 1
            agreed += judge_left == (winner == "left")
        result[judge] = {
            "label": judge_label(judge),
            "agreed": agreed,
            "total": total,
            "share": agreed / total if total else None,
            "share_ci": wilson_interval(agreed, total),
            "skipped": skipped,
        }
    return result


# --- what is installed -----------------------------------------------------------------------------------------

def scorer_status(*, root: Path | None = None) -> list[dict]:
    """One row per scorer (ccip, aesthetic, alignment): kind, label, state ("installed" | "missing" | "broken"),
    installed, folder, message, scored (images with a stored score). Cheap: no hashing, no model loading."""
    counts = dict(ImageScore.objects.values("kind").annotate(n=Count("id")).values_list("kind", "n"))
    rows = []
    for kind in KINDS:
        state = scorer_state(kind, root)
        rows.append({
            "kind": kind, "label": judge_label(kind), "state": state.state, "installed": state.installed,
            "folder": str(state.folder), "message": state.message, "scored": counts.get(kind, 0),
        })
    return rows


def reward_judge(*, root: Path | None = None) -> dict | None:
    """The registered reward judge: its judge.json (name, source, registered_at) plus its state ("installed" |
    "broken"), message and training figures (heldout_acc, heldout_ci_low, heldout_ci_high, train_pairs,
    heldout_pairs); None when none is registered."""
    from generation.scoring.files import REWARD_FILE, ScoringError, kind_folder
    from generation.scoring.reward import FIGURES, figures, reward_metadata

    state = scorer_state(REWARD, root)
    if state.state == "missing":
        return None
    info = {"name": "", "source": "", "registered_at": "", **dict.fromkeys(FIGURES), **(reward_judge_info(root) or {})}
    try:
        info.update(figures(reward_metadata(kind_folder(REWARD, root) / REWARD_FILE)))
    except ScoringError:
        pass
    return {**info, "state": state.state, "message": state.message}


def reward_prescreen() -> list[dict]:
    """Per model variant with reward-model scores, best first: variant_id, variant_name, enabled, reward_mean,
    reward_ci (95% t-interval) and reward_n -- how the registered reward model ranks the variants' images, for
    pre-screening a new variant before it meets voters (score its images: ``score_images --model NAME --scorer
    reward``)."""
    values: dict[int, list[float]] = defaultdict(list)
    for variant_id, value in ImageScore.objects.filter(kind=REWARD).values_list("image__variant_id", "value"):
        values[variant_id].append(value)
    variants = {v.id: v for v in ModelVariant.objects.filter(id__in=list(values))}
    rows = [{"variant_id": vid, "variant_name": variants[vid].name, "enabled": variants[vid].enabled,
             "reward_mean": mean(vals), "reward_ci": t_interval(vals), "reward_n": len(vals)}
            for vid, vals in values.items()]
    return sorted(rows, key=lambda r: (-r["reward_mean"], r["variant_name"]))


def aesthetic_values_by_model() -> dict[str, list[float]]:
    """{variant name: aesthetic scores of its images}, for the KDE plot."""
    values: dict[str, list[float]] = defaultdict(list)
    for name, value in ImageScore.objects.filter(kind=AESTHETIC).values_list("image__variant__name", "value"):
        values[name].append(value)
    return dict(sorted(values.items()))


def character_reference_count(character_id: int) -> int:
    return CharacterReference.objects.filter(character_id=character_id).count()
