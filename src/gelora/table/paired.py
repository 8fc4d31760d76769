"""Paired comparison of each method with a reference method (``gelora-table --versus lora``).

Two runs form a pair when they share (task, seed): the same training seed, the same data and,
checked through ``SweepRun.test_rows`` (sha256 of the test rows, ``Split.fingerprint``), the same
test rows. A pair whose fingerprints differ, or where only one run has one, is refused and
reported, never silently paired. Over the pairs (pooled over tasks and seeds) this module gives:

- the mean paired difference, signed so that positive favours the method: method minus
  reference for a score (in points, score x 100), reference minus method for a loss (in the
  loss's own units, ``Direction``);
- a 95% percentile bootstrap interval of that mean: resample pairs with replacement,
  ``BOOTSTRAP_RESAMPLES`` times with ``numpy.random.default_rng(BOOTSTRAP_SEED)`` so the table is
  reproducible, and take the 2.5th and 97.5th percentiles of the resampled means (Efron and
  Tibshirani, *An Introduction to the Bootstrap*, 1993, ch. 13);
- the two-sided Wilcoxon signed-rank test (Wilcoxon, 1945) of the differences,
  ``scipy.stats.wilcoxon`` with zero differences dropped (its ``zero_method="wilcox"``); with
  fewer than ``MIN_WILCOXON_PAIRS`` non-zero differences the smallest two-sided p it can give is
  ``2 / 2**n >= 0.0625``, so no p is printed rather than one that can never be small;
- a hierarchical (task, then seed) percentile bootstrap interval of the same mean
  (``hierarchical_bootstrap_interval``): draw as many tasks as there are, with replacement, then
  within each drawn task as many of its pairs as it has, with replacement; the statistic is the
  mean over all drawn pairs (each pair weighs the same; with equally many seeds per task, as in
  a sweep's grid, that is also the mean of the task means). Shown beside the task level: with
  few tasks a percentile bootstrap over them is narrower than it should be;
- the task level (``TaskLevel``, ``Comparison.task_level``), on which every verdict rests:
  pairs of one task share its test rows and its data, so they are not independent draws; the
  tasks are. With k >= 2 tasks the unit is a task's mean difference: the estimate is the mean of
  the k task means, its interval Student's t on them, ``mean +/- t_{1-alpha/2, k-1} sd_k /
  sqrt(k)`` (the analysis of cluster means in a two-stage design; Donner and Klar, *Design and
  Analysis of Cluster Randomization Trials in Health Research*, 2000, ch. 6), and its MDE
  ``(t_{1-alpha/2, k-1} + t_{power, k-1}) sd_k / sqrt(k)`` with sd_k the task means' standard
  deviation (ddof 1). That spread holds the between-task spread of the effect, which more seeds
  do not shrink; only more tasks do. With one task the unit is the seed, and the same formulas
  run over that task's pairs;
- the flat MDE (``minimum_detectable_effect``), which treats pairs as independent:
  ``(t_{1-alpha/2, n-1} + t_{power, n-1}) sd / sqrt(n)`` over the n pairs (``POWER``, two-sided
  ``ALPHA``); shown only labelled as such. ``mde_at`` is the formula and ``pairs_for_mde`` its
  inverse (``gelora-table --size-for-mde`` sizes the number of tasks with it, at the spread of
  the task means);
- a verdict in words (``verdict``), on the task level: ahead or behind when its 95% interval
  excludes zero; "equivalent within +/-M" when a margin is given and its 90% interval lies
  inside [-M, +M] (two one-sided tests at alpha 0.05, Schuirmann 1987); else no detectable
  difference, with the task-level MDE and the number of tasks (or seeds of one task) it rests on;
- the noise floor (``noise_floor``): the reference against itself under another training seed,
  pairing each (task, seed) run with the task's next seed, cyclically, on identical test rows;
- wins, ties and losses of the method;
- across the methods compared with one reference, Holm's step-down adjustment of their Wilcoxon
  p-values (``holm_adjusted``), since ten rows against one reference are ten tests.

Which way a metric improves is the record's own (``RunRecord.metric_modes``, written from the
task kind's ``metric_mode``). Records written before that field are read by the built-in
metrics' directions: ``HIGHER_IS_BETTER`` (``gelora.training.metrics``, SQuAD's two) and
``LOWER_IS_BETTER`` (instruction tuning's losses; a test checks both against the kinds). A metric
of an older record in neither, or a sweep mixing the two kinds, stops the comparison instead of
being read the wrong way round or pooled.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np

from gelora.table.sweep_runs import SweepRun

# the built-in metrics' directions, for records older than ``RunRecord.metric_modes``
HIGHER_IS_BETTER = frozenset(
    {"accuracy", "macro_f1", "f1", "matthews", "pearson", "spearman", "exact_match"}
)
LOWER_IS_BETTER = frozenset({"response_loss", "perplexity"})
BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0
CONFIDENCE = 0.95
MIN_WILCOXON_PAIRS = 6  # below this, an exact two-sided p is never under 0.05 (2 / 2**5)
TIE_POINTS = 1e-9  # differences (in points) this small are float noise: a tie
ALPHA = 0.05  # two-sided level of the MDE
POWER = 0.80  # power of the MDE
EQUIVALENCE_CONFIDENCE = 0.90  # TOST at alpha 0.05: the 90% interval inside the margin
MIN_VERDICT_PAIRS = 3  # fewer pairs: no verdict (an interval of 1 or 2 pairs is their range)


def plural(count: int, noun: str) -> str:
    """``1 pair``, ``2 pairs``."""
    return f"{count} {noun}" + ("" if count == 1 else "s")


@dataclass(frozen=True)
class Direction:
    """Which way a sweep's metric improves, and how its numbers are shown.

    Scores (accuracy, F1, correlations) lie in [0, 1] and are shown x100, as points; a paired
    difference is method minus reference. Losses are shown as they are, and a paired difference
    is reference minus method. Either way a positive difference favours the method."""

    sign: int  # +1: higher is better; -1: lower is better
    scale: float  # shown value = scale x score
    metric: str | None = None

    @property
    def higher_is_better(self) -> bool:
        return self.sign > 0

    @property
    def unit(self) -> str:
        return "points" if self.scale == 100 else (self.metric or "score")

    def describe_difference(self, reference: str) -> str:
        """What a paired difference is, for captions and axis labels."""
        if self.higher_is_better:
            return f"method minus {reference} test score in points (x100)"
        return (
            f"{reference}'s test {self.metric} minus the method's (lower is better: positive "
            "favours the method)"
        )


POINTS = Direction(sign=1, scale=100)


def metric_direction(metric: str, mode: str | None = None) -> Direction:
    """The ``Direction`` of one metric: ``mode`` as its record states it (``max`` or ``min``,
    ``RunRecord.metric_modes``), else, for a record older than that, the built-in metric's;
    ``ValueError`` when neither says."""
    if mode is None:
        mode = "max" if metric in HIGHER_IS_BETTER else "min" if metric in LOWER_IS_BETTER else None
    if mode == "max":
        return Direction(1, 100, metric)
    if mode == "min":
        return Direction(-1, 1, metric)
    raise ValueError(
        f"metric {metric} is not known to be higher- or lower-is-better: its records state no "
        "direction (results.json's metric_modes, written from the task kind) and it is no "
        "built-in metric"
    )


def sweep_direction(runs: Iterable[SweepRun]) -> Direction:
    """The one ``Direction`` of a sweep's completed runs' primary metrics (``POINTS`` when
    there are none);
    ``ValueError`` for an unknown metric, for scores and losses mixed in one sweep, or for two
    different losses (their differences are in different units and cannot be pooled or
    averaged; scores of different kinds all read as points, as a GLUE average does)."""
    done = [r for r in runs if r.status == "completed" and r.metric is not None]
    names = sorted({r.metric for r in done})
    stated = {r.metric: r.metric_mode for r in done if r.metric_mode is not None}
    directions = {metric_direction(m, stated.get(m)) for m in names}
    kinds = {(d.sign, d.scale) for d in directions}
    if len(kinds) > 1 or (kinds == {(-1, 1)} and len(names) > 1):
        raise ValueError(
            f"metrics {', '.join(names)} are not in one unit (scores x100 and losses, or two "
            "losses); table them in separate sweeps"
        )
    if not directions:
        return POINTS
    if len(directions) == 1:
        return directions.pop()
    return Direction(*kinds.pop(), None)  # several scores of one kind: points, no one name


@dataclass(frozen=True)
class Pair:
    """A (task, seed) on which both the method and the reference completed."""

    task: str
    seed: int | None
    method_score: float
    reference_score: float
    direction: Direction = POINTS
    same_plan: bool = False  # both trained the same rank in every matrix (then a tie is no news)
    best_at_last: bool | None = None  # the method's run: best validation at its last evaluation

    @property
    def difference(self) -> float:
        """Positive favours the method: method minus reference in points (x100) for a score,
        reference minus method for a loss."""
        d = self.direction
        return d.sign * d.scale * (self.method_score - self.reference_score)


@dataclass(frozen=True)
class Refusal:
    """A (task, seed) that could have been a pair but was not, and why."""

    method: str
    task: str
    seed: int | None
    reason: str

    def text(self) -> str:
        return f"{self.method}/{self.task}/seed={self.seed}"


DIFFERENT_TEST_ROWS = "scored on different test rows"


@dataclass(frozen=True)
class WilcoxonResult:
    p_value: float | None
    note: str  # why there is no p, else ""

    def text(self, digits: int = 3) -> str:
        return f"{self.p_value:.{digits}g}" if self.p_value is not None else f"n/a ({self.note})"


@dataclass(frozen=True)
class TaskLevel:
    """A comparison at the level at which its data were drawn.

    ``values`` are the task means of the differences when ``tasks`` >= 2 (the tasks are the
    independent draws; a task's pairs share its data and test rows), else the one task's pair
    differences (its seeds). Interval and MDE are Student's t on those values: the analysis of
    cluster means (Donner and Klar 2000, ch. 6); the MDE is ``mde_at`` of their spread."""

    values: tuple[float, ...]
    tasks: int

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def units(self) -> str:
        """What the statistics run over: ``5 tasks``, or ``7 seeds of 1 task``."""
        if self.tasks >= 2:
            return plural(self.tasks, "task")
        return f"{plural(self.n, 'seed')} of 1 task"

    @property
    def mean(self) -> float:
        return float(np.mean(self.values))

    @property
    def sd(self) -> float | None:
        """The values' standard deviation (ddof 1); None under 2."""
        return float(np.std(self.values, ddof=1)) if self.n > 1 else None

    def interval(self, confidence: float = CONFIDENCE) -> tuple[float, float] | None:
        """Student's t interval of the mean of ``values``; None under 2 values."""
        return t_interval(self.values, confidence) if self.n > 1 else None

    @property
    def mde(self) -> float | None:
        return mde_at(self.sd, self.n) if self.sd is not None else None


@dataclass(frozen=True)
class PairingRules:
    """How gelora-table judges its pairs, read once from its command line: ``margin``
    (``--margin``), the equivalence margin in the difference's unit; ``differing_plans``
    (``--differing-plans``), leave out the pairs whose two runs trained identical rank plans."""

    margin: float | None = None
    differing_plans: bool = False

    def kept(self, comparison: Comparison) -> Comparison:
        """``comparison`` with the pairs these rules keep."""
        return comparison.differing_plans_only() if self.differing_plans else comparison


EVERY_PAIR = PairingRules()  # no --margin, no --differing-plans


@dataclass(frozen=True)
class Comparison:
    """One method against the reference, over ``pairs`` (all tasks, or one)."""

    method: str
    reference: str
    pairs: tuple[Pair, ...]

    @property
    def differences(self) -> list[float]:
        return [p.difference for p in self.pairs]

    @property
    def task_groups(self) -> list[list[float]]:
        """The differences per task, tasks in first-seen order (the hierarchical bootstrap's
        clusters)."""
        groups: dict[str, list[float]] = {}
        for pair in self.pairs:
            groups.setdefault(pair.task, []).append(pair.difference)
        return list(groups.values())

    def differing_plans_only(self) -> Comparison:
        """This comparison without the pairs whose two runs trained identical rank plans
        (``--differing-plans``)."""
        return replace(self, pairs=tuple(p for p in self.pairs if not p.same_plan))

    @property
    def mean_difference(self) -> float | None:
        return float(np.mean(self.differences)) if self.pairs else None

    @property
    def sd(self) -> float | None:
        """Standard deviation of the differences (ddof 1); None under 2 pairs."""
        return float(np.std(self.differences, ddof=1)) if len(self.pairs) > 1 else None

    @cached_property
    def interval(self) -> tuple[float, float] | None:
        """The flat 95% interval (pairs resampled as exchangeable)."""
        return bootstrap_interval(self.differences) if self.pairs else None

    @cached_property
    def hierarchical_interval(self) -> tuple[float, float] | None:
        """The 95% task-then-seed interval."""
        return hierarchical_bootstrap_interval(self.task_groups) if self.pairs else None

    @property
    def task_means(self) -> list[float]:
        """Each task's mean difference, tasks in first-seen order."""
        return [float(np.mean(group)) for group in self.task_groups]

    @cached_property
    def task_level(self) -> TaskLevel | None:
        """The comparison at the level at which the data were drawn (``TaskLevel``): the task
        means when there are two tasks or more, else the one task's seeds; None without pairs."""
        if not self.pairs:
            return None
        groups = self.task_groups
        if len(groups) >= 2:
            return TaskLevel(tuple(self.task_means), len(groups))
        return TaskLevel(tuple(self.differences), 1)

    @property
    def mde(self) -> float | None:
        """The task-level MDE (``TaskLevel.mde``): what the verdicts rest on."""
        return self.task_level.mde if self.task_level is not None else None

    @property
    def flat_mde(self) -> float | None:
        """The MDE that treats pairs as independent (``minimum_detectable_effect``)."""
        return minimum_detectable_effect(self.differences)

    def verdict(self, margin: float | None = None) -> str:
        """The verdict on the task level (``verdict``), or why there is none."""
        if len(self.pairs) < MIN_VERDICT_PAIRS:
            return f"no verdict: only {plural(len(self.pairs), 'pair')}"
        if self.wins_ties_losses[1] == len(self.pairs):
            return "identical scores on every pair"
        level = self.task_level
        assert level is not None
        if level.interval() is None:
            return f"no verdict: only {level.units}"
        equivalence = level.interval(EQUIVALENCE_CONFIDENCE) if margin is not None else None
        return verdict(
            level.mean,
            level.interval(),  # type: ignore[arg-type]
            level.mde,
            margin,
            equivalence,
            over=level.units,
        )

    @property
    def best_at_last(self) -> tuple[int, int]:
        """Of the method's runs in these pairs that record it, how many had their best
        validation at the last evaluation: (k, n)."""
        known = [p.best_at_last for p in self.pairs if p.best_at_last is not None]
        return sum(known), len(known)

    @property
    def wilcoxon(self) -> WilcoxonResult:
        return wilcoxon_test(self.differences)

    @property
    def wins_ties_losses(self) -> tuple[int, int, int]:
        return wins_ties_losses(self.differences)


def _percentiles(means: np.ndarray, confidence: float) -> tuple[float, float]:
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def bootstrap_interval(
    differences: Sequence[float],
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
    confidence: float = CONFIDENCE,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean (Efron and Tibshirani 1993, ch. 13): resample
    the values with replacement, take the tails' percentiles of the resampled means."""
    values = np.asarray(differences, dtype=float)
    if values.size == 0:
        raise ValueError("no differences to bootstrap")
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, size=(resamples, values.size))].mean(axis=1)
    return _percentiles(means, confidence)


def t_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Student's t interval of the mean: ``mean +/- t_{(1+confidence)/2, n-1} sd / sqrt(n)``,
    sd with ddof 1; ``ValueError`` under 2 values."""
    from scipy.stats import t

    array = np.asarray(values, dtype=float)
    if array.size < 2:
        raise ValueError("a t interval needs at least 2 values")
    half = t.ppf((1 + confidence) / 2, array.size - 1) * array.std(ddof=1) / np.sqrt(array.size)
    return float(array.mean() - half), float(array.mean() + half)


def hierarchical_bootstrap_means(
    groups: Sequence[Sequence[float]],
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> np.ndarray:
    """Two-stage resampled means: per resample, draw ``len(groups)`` groups (tasks) with
    replacement, then within each drawn group as many values (seeds) as it holds, with
    replacement; the statistic is the mean over all values drawn (each pair weighs the same, as
    in the pooled mean). Reproducible: ``numpy.random.default_rng(seed)``."""
    arrays = [np.asarray(g, dtype=float) for g in groups if len(g)]
    if not arrays:
        raise ValueError("no differences to bootstrap")
    sizes = np.array([a.size for a in arrays])
    width = int(sizes.max())
    padded = np.zeros((len(arrays), width))
    for row, values in enumerate(arrays):
        padded[row, : values.size] = values
    rng = np.random.default_rng(seed)
    drawn = rng.integers(0, len(arrays), size=(resamples, len(arrays)))  # tasks
    counts = sizes[drawn]  # (resamples, tasks): the drawn task's number of pairs
    within = np.floor(rng.random((resamples, len(arrays), width)) * counts[..., None])
    values = padded[drawn[..., None], within.astype(int)]
    used = np.arange(width) < counts[..., None]  # a task of fewer pairs draws fewer
    return (values * used).sum(axis=(1, 2)) / counts.sum(axis=1)


def hierarchical_bootstrap_interval(
    groups: Sequence[Sequence[float]],
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
    confidence: float = CONFIDENCE,
) -> tuple[float, float]:
    """Percentile interval of ``hierarchical_bootstrap_means`` (tasks, then seeds within them;
    Davison and Hinkley, *Bootstrap Methods and their Application*, 1997, sec. 3.8)."""
    return _percentiles(hierarchical_bootstrap_means(groups, resamples, seed), confidence)


def minimum_detectable_effect(
    differences: Sequence[float], alpha: float = ALPHA, power: float = POWER
) -> float | None:
    """The smallest true mean difference a two-sided paired t-test at ``alpha`` detects with
    probability ``power`` given these pairs' spread: ``(t_{1-alpha/2, n-1} + t_{power, n-1})
    * sd / sqrt(n)``, sd with ddof 1; None under 2 pairs (no spread to go by)."""
    n = len(differences)
    if n < 2:
        return None
    sd = float(np.std(np.asarray(differences, dtype=float), ddof=1))
    return mde_at(sd, n, alpha, power)


def mde_at(sd: float, n: int, alpha: float = ALPHA, power: float = POWER) -> float:
    """The MDE of ``n`` pairs (n >= 2) of spread ``sd``: ``(t_{1-alpha/2, n-1} + t_{power, n-1})
    * sd / sqrt(n)``, the formula ``minimum_detectable_effect`` and ``pairs_for_mde`` share."""
    from scipy.stats import t

    return float((t.ppf(1 - alpha / 2, n - 1) + t.ppf(power, n - 1)) * sd / np.sqrt(n))


def pairs_for_mde(
    sd: float, goal: float, alpha: float = ALPHA, power: float = POWER, limit: int = 100_000
) -> int | None:
    """The fewest pairs whose MDE (``minimum_detectable_effect``'s formula) at spread ``sd`` is
    at most ``goal``: the sample-size re-estimation of an internal pilot (Wittes and Brittain
    1990), which reads the nuisance spread of the first pairs, never their mean; at least 2;
    None when even ``limit`` pairs would not reach the goal."""
    if not goal > 0:
        raise ValueError(f"an MDE goal must be a positive number, got {goal}")
    if sd < 0 or not np.isfinite(sd):
        raise ValueError(f"a spread must be a finite non-negative number, got {sd}")
    if mde_at(sd, limit, alpha, power) > goal:
        return None
    low, high = 1, limit  # the MDE falls with n: at high <= goal < at low (low: no spread)
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if mde_at(sd, middle, alpha, power) <= goal else (middle, high)
    return high


def equivalent(interval: tuple[float, float], margin: float) -> bool:
    """Two one-sided tests (Schuirmann 1987): equivalence within +/-margin when the
    (1 - 2 alpha) interval lies inside [-margin, +margin]."""
    return -margin <= interval[0] and interval[1] <= margin


def verdict(
    mean: float,
    interval: tuple[float, float],
    mde: float | None,
    margin: float | None = None,
    equivalence_interval: tuple[float, float] | None = None,
    over: str | None = None,
) -> str:
    """What the statistics allow one to say of a row: ahead or behind by the mean, with the
    95% interval, when that interval excludes zero; else, with ``margin``, equivalent when the
    90% ``equivalence_interval`` lies inside [-margin, +margin]; else no detectable difference,
    with the MDE (and, with a margin, that equivalence was not shown either). ``over`` names
    what the statistics ran over (``5 tasks``), said in every verdict."""
    low, high = interval
    bounds = f"[{low:+.2f}, {high:+.2f}]"
    suffix = f" over {over}" if over else ""
    if low > 0:
        return f"ahead by {mean:.2f} {bounds}{suffix}"
    if high < 0:
        return f"behind by {-mean:.2f} {bounds}{suffix}"
    if (
        margin is not None
        and equivalence_interval is not None
        and equivalent(equivalence_interval, margin)
    ):
        return f"equivalent within +/-{margin:g}{suffix}"
    text = "no detectable difference (MDE " + (f"{mde:.2f}" if mde is not None else "n/a")
    text += f"{suffix})"
    if margin is not None:
        text += f"; not shown equivalent within +/-{margin:g}"
    return text


def wilcoxon_test(differences: Sequence[float]) -> WilcoxonResult:
    """Two-sided Wilcoxon signed-rank p of the differences (``scipy.stats.wilcoxon``, zeros
    dropped), or no p with the reason when there are too few non-zero differences."""
    nonzero = [d for d in differences if abs(d) > TIE_POINTS]
    if not nonzero:
        return WilcoxonResult(None, "no pairs" if not differences else "all differences zero")
    if len(nonzero) < MIN_WILCOXON_PAIRS:
        return WilcoxonResult(None, f"only {plural(len(nonzero), 'non-zero pair')}")
    from scipy.stats import wilcoxon  # scipy comes with scikit-learn; imported only when used

    return WilcoxonResult(float(wilcoxon(nonzero, alternative="two-sided").pvalue), "")


def holm_adjusted(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjustment (Holm 1979, "A simple sequentially rejective multiple test
    procedure", Scand. J. Statist. 6:65-70): with the m p-values sorted ascending,
    p_(i) becomes max_{j <= i} min(1, (m - j + 1) p_(j)), which controls the family-wise error
    rate. An entry without a p (None: too few pairs) stays None and does not count in m."""
    tested = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
    adjusted: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, (p_value, index) in enumerate(tested):
        running = max(running, min(1.0, (len(tested) - rank) * p_value))
        adjusted[index] = running
    return adjusted


def wins_ties_losses(differences: Sequence[float]) -> tuple[int, int, int]:
    """How often the method did better, the same (within float noise), worse (differences are
    signed so that positive favours the method)."""
    signs = Counter(0 if abs(d) <= TIE_POINTS else (1 if d > 0 else -1) for d in differences)
    return signs[1], signs[0], signs[-1]


def _by_task_seed(runs: Iterable[SweepRun], same_rate: bool = False) -> dict[tuple, list[SweepRun]]:
    """Completed runs with a score by (task, seed), or by (task, seed, learning rate)."""
    grouped: dict[tuple, list[SweepRun]] = {}
    for run in runs:
        if run.status == "completed" and run.score is not None:
            key = (run.task, run.seed, run.lr) if same_rate else (run.task, run.seed)
            grouped.setdefault(key, []).append(run)
    return grouped


def pair_runs(
    runs: Sequence[SweepRun],
    method: str,
    reference: str,
    direction: Direction = POINTS,
    same_rate: bool = False,
) -> tuple[list[Pair], list[Refusal]]:
    """Completed runs of ``method`` and ``reference`` matched on (task, seed), in the order the
    method's runs come; with ``same_rate``, on (task, seed, learning rate) too, so that only
    runs trained at one rate pair (a run that records no rate pairs with none). Refused:
    different test-row fingerprints (or only one run has one), and a key with more than one
    completed run of either method (nothing to pair them by)."""
    mine = _by_task_seed((r for r in runs if r.method == method), same_rate)
    theirs = _by_task_seed((r for r in runs if r.method == reference), same_rate)
    pairs, refused = [], []
    for key, own in mine.items():
        task, seed = key[0], key[1]
        other = theirs.get(key)
        if other is None or (same_rate and key[2] is None):
            continue
        if len(own) > 1 or len(other) > 1:
            reason = f"{len(own)} and {len(other)} completed runs, cannot tell which to pair"
            refused.append(Refusal(method, task, seed, reason))
        elif own[0].test_rows != other[0].test_rows:
            refused.append(Refusal(method, task, seed, DIFFERENT_TEST_ROWS))
        else:
            mine_ranks, their_ranks = own[0].trained_ranks, other[0].trained_ranks
            same_plan = bool(mine_ranks) and mine_ranks == their_ranks
            pairs.append(
                Pair(task, seed, own[0].score, other[0].score, direction, same_plan,
                     own[0].best_at_last)
            )  # fmt: skip
    return pairs, refused


def compare(
    runs: Sequence[SweepRun], reference: str, same_rate: bool = False
) -> tuple[list[Comparison], dict[tuple[str, str], Comparison], list[Refusal]]:
    """Every method but ``reference`` (first-seen order) against it: overall comparisons,
    per-(method, task) comparisons, and the refused pairs; with ``same_rate``, only pairs of
    runs trained at the same learning rate (``pair_runs``)."""
    direction = sweep_direction(runs)
    methods = [m for m in dict.fromkeys(r.method for r in runs) if m != reference]
    tasks = list(dict.fromkeys(r.task for r in runs))
    overall, per_task, refused = [], {}, []
    for method in methods:
        pairs, refusals = pair_runs(runs, method, reference, direction, same_rate)
        overall.append(Comparison(method, reference, tuple(pairs)))
        refused += refusals
        for task in tasks:
            mine = tuple(p for p in pairs if p.task == task)
            per_task[method, task] = Comparison(method, reference, mine)
    return overall, per_task, refused


def unfingerprinted_pairs(comparisons: Sequence[Comparison], runs: Sequence[SweepRun]) -> int:
    """Pairs whose runs both lack a test-row fingerprint (records older than ``eval_rows``):
    paired on trust, which the table says."""
    bare = {(r.method, r.task, r.seed) for r in runs if r.test_rows is None}
    return sum(
        (c.method, p.task, p.seed) in bare and (c.reference, p.task, p.seed) in bare
        for c in comparisons
        for p in c.pairs
    )


def noise_floor(
    runs: Sequence[SweepRun], reference: str, direction: Direction = POINTS
) -> Comparison:
    """The reference against itself under another training seed: within each task, the run of
    seed s (sorted seeds s_1 < ... < s_k) is paired with that of the next seed, cyclically
    (s_k with s_1; with two seeds, one pair), when both were scored on identical test rows;
    the difference is the other seed's score minus this one's, signed as ``Pair.difference``.
    Each task's cyclic differences sum to zero, so the mean is 0 by construction; what the row
    shows is the spread: the intervals and the MDE of a difference that is only the seed.
    Its ``best_at_last`` counts each reference run once (as the other seed of one pair)."""
    mine = _by_task_seed(r for r in runs if r.method == reference)
    tasks: dict[str, list[tuple[int | None, SweepRun]]] = {}
    for (task, seed), own in mine.items():
        if len(own) == 1:
            tasks.setdefault(task, []).append((seed, own[0]))
    pairs = []
    for task, seeded in tasks.items():
        seeded.sort(key=lambda item: (item[0] is None, item[0] or 0))
        k = len(seeded)
        links = [(i, (i + 1) % k) for i in range(k)] if k > 2 else [(0, 1)] if k == 2 else []
        for i, j in links:
            (seed, this), (_, other) = seeded[i], seeded[j]
            if this.test_rows != other.test_rows:
                continue
            pairs.append(
                Pair(task, seed, other.score, this.score, direction, False, other.best_at_last)
            )  # type: ignore[arg-type]
    return Comparison(f"{reference} vs itself (other seed)", reference, tuple(pairs))
