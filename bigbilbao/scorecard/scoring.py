"""Judging one KPI measurement (status, score, trend, suppression) and rolling scores up per perspective.

The rules are stated once, in the `bigbilbao.scorecard.compute` module docstring; this module implements them.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from bigbilbao.scorecard.kpi_model import PERSPECTIVES, Catalogue, Kpi

FLAT_TOLERANCE = 0.01  # |delta| up to 1 % of the previous value counts as flat
OVERALL = "overall"
SCORE_KEYS = ["area_level", "area_code", "period", "period_start", "period_end"]
SCORE_COLUMNS = [*SCORE_KEYS, "perspective", "score", "n_kpis", "catalogue_version", "boundary_version"]
Measurement = dict[str, float | None]  # value, n, capture, exceedances


def judge(kpi: Kpi, now: Measurement, before: Measurement, k: int, suppress_zero: bool) -> dict[str, Any]:
    """Status, score, trend and suppression of one area's KPI, from this span's and the previous span's measures."""
    valid_now, valid_before = _valid(kpi, now), _valid(kpi, before)
    breach = _breach(kpi, now)
    status = _status(kpi, now["value"], valid_now, breach)
    score = _score(kpi, now["value"], status, breach)
    trend, delta = _trend(now["value"], before["value"]) if valid_now and valid_before else (None, None)
    hide_now = _suppressed(kpi, now, k, suppress_zero)
    hide_before = _suppressed(kpi, before, k, suppress_zero)
    return {
        "value": None if hide_now else now["value"], "status": status, "score": None if hide_now else score,
        "trend": trend, "delta": None if hide_now or hide_before else delta,
        "previous_value": before["value"] if valid_before and not hide_before else None,
        "exceedances_used": now["exceedances"], "data_capture": now["capture"],
        "n": None if hide_now else now["n"], "suppressed": hide_now,
    }


def rag(kpi: Kpi, value: float) -> str:
    """Green if at least as good as thresholds.green, amber if at least as good as thresholds.amber, else red."""
    assert kpi.thresholds is not None  # callers only ask for scored KPIs
    sign = 1.0 if kpi.direction == "lower_is_better" else -1.0
    if sign * value <= sign * kpi.thresholds.green:
        return "green"
    return "amber" if sign * value <= sign * kpi.thresholds.amber else "red"


def linear_score(kpi: Kpi, value: float) -> float:
    """100 at the target, 0 at the red threshold, linear between and clipped to [0, 100]."""
    assert kpi.thresholds is not None and kpi.target is not None
    red, target = kpi.thresholds.red, kpi.target
    raw = (red - value) / (red - target) if kpi.direction == "lower_is_better" else (value - red) / (target - red)
    return min(100.0, max(0.0, 100.0 * raw))


def roll_up(kpis: pd.DataFrame, catalogue: Catalogue) -> pd.DataFrame:
    """Perspective scores (KPI weights) and the overall score (perspective weights) per area and period."""
    weights = kpis["kpi_id"].map({kpi.id: kpi.weight for kpi in catalogue.kpis}).astype("float64")
    scores = pd.to_numeric(kpis["score"], errors="coerce")
    scored = kpis.assign(score=scores, weight=weights)[scores.notna() & (weights > 0)]
    scored = scored.assign(weighted=scored["weight"] * scored["score"])
    sums = scored.groupby([*SCORE_KEYS, "perspective"])[["weighted", "weight"]].sum()
    per = pd.DataFrame({"score": sums["weighted"] / sums["weight"],
                        "n_kpis": scored.groupby([*SCORE_KEYS, "perspective"]).size()}).reset_index()
    grid = kpis[SCORE_KEYS].drop_duplicates().merge(pd.DataFrame({"perspective": list(PERSPECTIVES)}), how="cross")
    perspectives = grid.merge(per, on=[*SCORE_KEYS, "perspective"], how="left")
    overall = _overall(perspectives, catalogue)
    out = pd.concat([perspectives, overall], ignore_index=True)
    out["n_kpis"] = out["n_kpis"].fillna(0).astype("int64")
    out["score"] = out["score"].astype("float64")
    versions = {column: kpis[column].iloc[0] if len(kpis) else None
                for column in ("catalogue_version", "boundary_version")}
    return out.assign(**versions)[SCORE_COLUMNS]


def _overall(perspectives: pd.DataFrame, catalogue: Catalogue) -> pd.DataFrame:
    """Weighted mean of the perspective scores that exist, with the catalogue's perspective weights."""
    weight = perspectives["perspective"].map(dict(catalogue.perspectives)).astype("float64")
    used = perspectives.assign(weight=weight)[perspectives["score"].notna() & (weight > 0)]
    used = used.assign(weighted=used["weight"] * used["score"])
    sums = used.groupby(SCORE_KEYS)[["weighted", "weight", "n_kpis"]].sum()
    overall = pd.DataFrame({"score": sums["weighted"] / sums["weight"], "n_kpis": sums["n_kpis"]}).reset_index()
    keys = perspectives[SCORE_KEYS].drop_duplicates()
    return keys.merge(overall, on=SCORE_KEYS, how="left").assign(perspective=OVERALL)


def _valid(kpi: Kpi, measured: Measurement) -> bool:
    """A value exists and, for sensor KPIs, enough of the expected sensor-hours were observed."""
    if measured["value"] is None:
        return False
    if not kpi.uses_capture:
        return True
    return measured["capture"] is not None and measured["capture"] >= kpi.min_data_capture


def _breach(kpi: Kpi, measured: Measurement) -> bool:
    """More exceedances so far this year than the EU rule allows."""
    used = measured["exceedances"]
    return kpi.exceedance is not None and used is not None and used > kpi.exceedance.allowed_per_year


def _status(kpi: Kpi, value: float | None, valid: bool, breach: bool) -> str | None:
    """no_data, None (trend only), red on a breached allowance, else the RAG band of the value."""
    if not valid or value is None:
        return "no_data"
    if kpi.trend_only:
        return None
    return "red" if breach else rag(kpi, value)


def _score(kpi: Kpi, value: float | None, status: str | None, breach: bool) -> float | None:
    """Linear score, 0 on a breached allowance, none without a colour."""
    if status in (None, "no_data") or value is None:
        return None
    return 0.0 if breach else linear_score(kpi, value)


def _trend(value: float | None, previous: float | None) -> tuple[str | None, float | None]:
    """Direction of the change and its size; flat within 1 % of the previous value."""
    if value is None or previous is None:
        return None, None
    delta = value - previous
    if abs(delta) <= FLAT_TOLERANCE * abs(previous) + 1e-12:
        return "flat", delta
    return ("up" if delta > 0 else "down"), delta


def _suppressed(kpi: Kpi, measured: Measurement, k: int, suppress_zero: bool) -> bool:
    """Event KPIs built on fewer than k events (1..k-1, and 0 when suppress_zero) must not be published."""
    n = measured["n"]
    if kpi.aggregation.window != "event" or n is None:
        return False
    return 1 <= n < k or (suppress_zero and n == 0)
