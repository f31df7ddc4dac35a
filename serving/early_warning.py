"""Early warnings from daily counts: a day whose count is far above what the series' own history
predicts, after the weekday effect.

For a series (one subcategory in one district, or one department) and a day t, the expected
count is

    μ_t = w[weekday(t)] · (Σ counts over the WINDOW days before t + PRIOR) / (Σ w over them + 1)

where w is the whole stream's weekday profile (mean 1; hotlines are quieter at weekends) and
PRIOR a small pseudo-count, so a series that was silent has μ > 0. A rolling window follows a
trend. The day is abnormal when its count is at least MIN_COUNT and the upper tail of a count
distribution with that mean is below `alpha`:

- "poisson": P(X ≥ x | Poisson(μ)), the classic surveillance test (Farrington's, without its
  GLM: the weekday factors play the covariates' part and the window the trend's);
- "negbin": P(X ≥ x) for a negative binomial with mean μ and the series' own overdispersion
  (method of moments on the window), for series that are burstier than Poisson.

`benchmarks/early_warning_bench.py` injects bursts into the real Haikou stream and measures both;
the served method and alpha are the ones it chose (see the README).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Literal

import numpy as np

Method = Literal["poisson", "negbin"]
WINDOW = 28
PRIOR = 0.5
MIN_COUNT = 3
ALPHA = 1e-4
METHOD: Method = "negbin"


@dataclass(frozen=True)
class Alarm:
    series: Any  # the key it was given under
    day: date
    observed: int
    expected: float
    p_value: float
    history: tuple[int, ...]  # the WINDOW days before `day`


def weekday_profile(days: Sequence[date], totals: Sequence[float]) -> np.ndarray:
    """Mean count per weekday over the mean count (7 factors, Monday first; 1.0 where unseen)."""
    sums, n = np.zeros(7), np.zeros(7)
    for d, t in zip(days, totals, strict=True):
        sums[d.weekday()] += t
        n[d.weekday()] += 1
    means = np.divide(sums, n, out=np.zeros(7), where=n > 0)
    overall = means[n > 0].mean() if (n > 0).any() and means[n > 0].mean() > 0 else 1.0
    return np.where(n > 0, means / overall, 1.0)


def poisson_tail(x: int, mean: float) -> float:
    """P(X ≥ x) for X ~ Poisson(mean)."""
    if x <= 0:
        return 1.0
    if x <= mean:  # not in the far tail: 1 − P(X < x)
        term = math.exp(-mean)
        cdf = term
        for k in range(1, x):
            term *= mean / k
            cdf += term
        return max(0.0, 1.0 - cdf)
    term = math.exp(-mean + x * math.log(mean) - math.lgamma(x + 1)) if mean > 0 else 0.0
    total, k = 0.0, x
    while term > 1e-300 and (total == 0.0 or term > total * 1e-12):
        total += term
        k += 1
        term *= mean / k
    return min(1.0, total)


def negbin_tail(x: int, mean: float, size: float) -> float:
    """P(X ≥ x) for a negative binomial with this mean and size r (variance mean + mean²/r)."""
    if x <= 0:
        return 1.0
    if not math.isfinite(size):
        return poisson_tail(x, mean)
    p = size / (size + mean)
    log_pmf = (math.lgamma(x + size) - math.lgamma(size) - math.lgamma(x + 1)
               + size * math.log(p) + x * math.log1p(-p))
    term, total, k = math.exp(log_pmf), 0.0, x
    while term > 1e-300 and (total == 0.0 or term > total * 1e-12) and k < x + 100_000:
        total += term
        term *= (k + size) / (k + 1) * (1 - p)
        k += 1
    return min(1.0, total)


def _size(history: np.ndarray, factors: np.ndarray) -> float:
    """The negative binomial size of a window, by the method of moments (∞: not overdispersed)."""
    adjusted = history / factors
    mean, var = adjusted.mean(), adjusted.var(ddof=1) if len(adjusted) > 1 else 0.0
    return float(mean * mean / (var - mean)) if var > mean > 0 else math.inf


def detect(counts: Mapping[Any, Mapping[date, int]], days: Sequence[date],
           profile: np.ndarray, *, check: Sequence[date] | None = None,
           method: Method = METHOD, alpha: float = ALPHA, min_count: int = MIN_COUNT,
           window: int = WINDOW) -> list[Alarm]:
    """Abnormal days of each series among `check` (default: every day with a full window).
    `days` are consecutive; a series' missing days count 0."""
    index = {d: i for i, d in enumerate(days)}
    factors = np.array([profile[d.weekday()] for d in days])
    wanted = [index[d] for d in (check if check is not None else days[window:])
              if d in index and index[d] >= window]
    alarms = []
    for series, per_day in counts.items():
        row = np.zeros(len(days))
        for d, n in per_day.items():
            if d in index:
                row[index[d]] = n
        for t in wanted:
            x = int(row[t])
            if x < min_count:
                continue
            history, w = row[t - window:t], factors[t - window:t]
            mean = factors[t] * (history.sum() + PRIOR) / (w.sum() + 1)
            p = (poisson_tail(x, mean) if method == "poisson"
                 else negbin_tail(x, mean, _size(history, w)))
            if p < alpha:
                alarms.append(Alarm(series, days[t], x, round(float(mean), 3), p,
                                    tuple(int(v) for v in history)))
    return alarms


def day_range(first: date, last: date) -> list[date]:
    return [first + timedelta(days=k) for k in range((last - first).days + 1)]
