"""A pre-registered one-task confirmation: is ``--method`` ahead of ``--versus`` on ``--task``?

    python experiments/confirm_paired.py SWEEP_DIR --method gelora_budget_waterfill \
        --versus lora --task rotten_tomatoes [--alpha 0.05] [--out FILE.md]

Pairs the two rows' completed runs on (task, seed) and identical test rows
(``gelora.table.paired.pair_runs``), then the test written before the runs: a one-sided paired
t-test of the mean difference (method minus reference, points) against 0 at ``--alpha``
(Student 1908; the claim is about one task, so its seeds are the level at which its data are
drawn), with the two-sided 95% t-interval, the MDE at 80% power (one-sided), wins/ties/losses and
the one-sided Wilcoxon signed-rank p as a secondary check. The verdict is "confirmed" when the
t-test's p is under alpha, else "not confirmed". Runs that did not complete, or that could not be
paired, are listed, never dropped silently.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gelora.table.paired import (
    POWER,
    pair_runs,
    sweep_direction,
    t_interval,
    wins_ties_losses,
)
from gelora.table.sweep_runs import load_sweep


@dataclass(frozen=True)
class Confirmation:
    n: int
    mean: float
    interval: tuple[float, float]
    p_value: float
    wilcoxon_p: float | None
    mde: float
    wins_ties_losses: tuple[int, int, int]
    alpha: float

    @property
    def confirmed(self) -> bool:
        return self.p_value < self.alpha


def one_sided_test(differences: list[float], alpha: float = 0.05) -> Confirmation:
    """The one-sided paired t-test (greater) of ``differences``, with its companions."""
    from scipy.stats import t, ttest_1samp, wilcoxon

    values = np.asarray(differences, dtype=float)
    if values.size < 3:
        raise ValueError(f"a confirmation needs at least 3 pairs, got {values.size}")
    p_value = float(ttest_1samp(values, 0.0, alternative="greater").pvalue)
    nonzero = values[np.abs(values) > 1e-9]
    wilcoxon_p = (
        float(wilcoxon(nonzero, alternative="greater").pvalue) if nonzero.size >= 3 else None
    )
    sd = float(values.std(ddof=1))
    mde = float((t.ppf(1 - alpha, values.size - 1) + t.ppf(POWER, values.size - 1)) * sd
                / np.sqrt(values.size))  # fmt: skip
    return Confirmation(
        values.size, float(values.mean()), t_interval(values), p_value, wilcoxon_p, mde,
        wins_ties_losses(values.tolist()), alpha,
    )  # fmt: skip


def report(result: Confirmation, method: str, versus: str, task: str, notes: list[str]) -> str:
    word = "confirmed" if result.confirmed else "not confirmed"
    wilcoxon = "n/a" if result.wilcoxon_p is None else f"{result.wilcoxon_p:.3g}"
    lines = [
        f"{method} minus {versus} on {task}, {result.n} seeds: mean {result.mean:+.2f} points, "
        f"95% t-interval [{result.interval[0]:+.2f}, {result.interval[1]:+.2f}], "
        f"wins/ties/losses {'/'.join(map(str, result.wins_ties_losses))}.",
        f"One-sided paired t-test (greater than 0): p = {result.p_value:.3g} at alpha "
        f"{result.alpha:g}: **{word}**. One-sided Wilcoxon p = {wilcoxon}. MDE at "
        f"{100 * POWER:.0f}% power (one-sided): {result.mde:.2f} points.",
        *notes,
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path)
    parser.add_argument("--method", required=True)
    parser.add_argument("--versus", required=True)
    parser.add_argument("--task", required=True)
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    runs = [r for r in load_sweep(args.sweep_dir).runs if r.task == args.task]
    pairs, refused = pair_runs(runs, args.method, args.versus, sweep_direction(runs))
    notes = [f"not completed: {r.method} seed {r.seed} ({r.status})"
             for r in runs if r.status != "completed"]  # fmt: skip
    notes += [f"not paired: {r.text()} ({r.reason})" for r in refused]
    try:
        result = one_sided_test([p.difference for p in pairs], args.alpha)
    except ValueError as error:
        raise SystemExit(f"confirm_paired: {error}") from error
    text = report(result, args.method, args.versus, args.task, notes)
    print(text, end="")
    if args.out is not None:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
