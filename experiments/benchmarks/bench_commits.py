"""Benchmark: the default run's stages at this checkout against an earlier commit, alternating.

    python experiments/benchmarks/bench_commits.py --against <rev> [--rounds 6] [--steps 40]
        [--id-samples 500] [--warmup 1] [--out DIR] [-- Hydra overrides for both sides...]

Checks ``<rev>`` out into a temporary ``git worktree`` and runs a short default ``gelora-train``
from each tree (``python -m gelora.train`` with ``PYTHONPATH=<tree>/src``: each side's own code
and ``conf/``), in one process each, alternating: round k runs this checkout first when k is even
and ``<rev>`` first when k is odd (ABBA), so a machine that slows down or speeds up during the
benchmark weighs on both sides alike. The worktree's bytecode is compiled before the first run
(this checkout's already is), and ``--warmup`` rounds run first and are not counted.

A run is the default run cut short: ``--steps`` optimizer steps in one epoch of as many batches
(``trainer.limit_train_batches``), one validation batch at its end, an ID sample of
``--id-samples`` inputs, the whole test split, no logger, the ID-profile and token caches off (so
every run computes its hidden states). Its stages are read from the run's ``train.log`` (the
hidden-state pass and the ID estimation, each timed on its own line) and ``results.json``
(``timings``: the profile stage, fit, test, total; ``optimizer_steps``):

- ``hidden_states_s``, ``id_s``: the two halves of the profile stage;
- ``profile_s``: ``timings.id_estimation_s``, the whole profile stage (sampling, hidden states,
  near-copies, ID);
- ``fit_s`` and ``steps_per_s`` (``optimizer_steps / fit_s``: one validation batch and the
  checkpoints included);
- ``test_s``, ``total_s`` (the pipeline) and ``wall_s`` (the process: interpreter and imports too).

For each stage the rounds give paired ratios this checkout / ``<rev>``; their geometric mean is
the ratio shown, with a 95% interval from Student's t over the rounds' log ratios (a ratio above
1 is slower for a time, faster for ``steps_per_s``), and the rounds this spread needs to resolve
a 5% change (the interval's half-width at most log 1.05). Writes ``bench_commits.json`` (every
run's timings, the order, the ratios) and ``bench_commits.md`` to ``--out`` and prints the table.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SIDES = ("current", "against")
RESOLVE = 0.05  # the change the default rounds are sized to resolve
LEVEL = 0.95
# stage -> True when a larger value is faster (a rate), False for seconds
STAGES = {
    "hidden_states_s": False,
    "id_s": False,
    "profile_s": False,
    "fit_s": False,
    "steps_per_s": True,
    "test_s": False,
    "total_s": False,
    "wall_s": False,
}
_HIDDEN = re.compile(r"hidden states: [\d,]+ inputs x \d+ layers in ([\d.]+) s")
_ID = re.compile(r"intrinsic dimension: \d+ layers.* in ([\d.]+) s")


def alternation(rounds: int) -> list[tuple[str, str]]:
    """The order of the two sides in each round: this checkout first in even rounds, the earlier
    commit first in odd ones (ABBA), so that a drift of the machine's speed cancels over each
    pair of rounds."""
    return [SIDES if k % 2 == 0 else SIDES[::-1] for k in range(rounds)]


def run_overrides(steps: int, id_samples: int) -> list[str]:
    """The Hydra overrides that make the default run short and alike on both sides."""
    if steps < 1 or id_samples < 2:
        raise ValueError(f"--steps must be >= 1 and --id-samples >= 2 (got {steps}, {id_samples})")
    return [
        f"trainer.max_steps={steps}",
        f"trainer.max_epochs={steps}",  # a tiny task's epoch may be shorter than --steps
        f"trainer.limit_train_batches={steps}",  # so the epoch ends, and validates, at the cap
        "trainer.val_check_interval=1.0",
        "trainer.limit_val_batches=1",
        f"estimator.n_samples={id_samples}",
        "estimator.cache=false",
        "task.cache_tokens=false",
        "logger=none",
    ]


def stage_timings(record: dict, log_text: str, wall_s: float) -> dict[str, float | None]:
    """A run's stages from its ``results.json`` and ``train.log`` (None: not recorded, e.g. a
    profile read from a cache prints no hidden-state line)."""
    timings = record.get("timings") or {}
    hidden = _HIDDEN.findall(log_text)
    ids = _ID.findall(log_text)
    fit_s = timings.get("fit_s")
    steps = record.get("optimizer_steps")
    return {
        "hidden_states_s": float(hidden[-1]) if hidden else None,
        "id_s": float(ids[-1]) if ids else None,
        "profile_s": timings.get("id_estimation_s"),
        "fit_s": fit_s,
        "steps_per_s": steps / fit_s if steps and fit_s else None,
        "test_s": timings.get("test_s"),
        "total_s": timings.get("total_s"),
        "wall_s": round(wall_s, 3),
    }


@dataclass(frozen=True)
class Ratio:
    """A stage's ratio this checkout / the earlier commit over paired rounds.

    Attributes:
        ratio: the geometric mean of the rounds' ratios.
        low, high: its 95% interval, ``exp(mean +/- t_{n-1} sd / sqrt(n))`` over the rounds' log
            ratios (Student's t: the rounds are few and their spread estimated); None with one
            round or none.
        rounds: the rounds with the stage on both sides.
        sd_log: the rounds' standard deviation of the log ratio (None below two rounds).
        rounds_for_5pct: the rounds at which this spread gives a half-width of log 1.05.
    """

    ratio: float | None
    low: float | None
    high: float | None
    rounds: int
    sd_log: float | None
    rounds_for_5pct: int | None


def _t_quantile(df: int) -> float:
    from scipy.stats import t

    return float(t.ppf(0.5 + LEVEL / 2, df))


def rounds_needed(sd_log: float, change: float = RESOLVE, cap: int = 1000) -> int:
    """The fewest rounds n >= 2 whose interval half-width ``t_{n-1} * sd / sqrt(n)`` is at most
    ``log(1 + change)``, at a spread ``sd_log`` of the log ratios (``cap`` when none below it)."""
    target = math.log1p(change)
    for n in range(2, cap):
        if _t_quantile(n - 1) * sd_log / math.sqrt(n) <= target:
            return n
    return cap


def paired_ratio(current: list[float | None], against: list[float | None]) -> Ratio:
    """The ratio current / against over the rounds where both have the stage."""
    pairs = zip(current, against, strict=True)
    logs = [
        math.log(c / a) for c, a in pairs if c is not None and a is not None and c > 0 and a > 0
    ]
    n = len(logs)
    if n == 0:
        return Ratio(None, None, None, 0, None, None)
    mean = statistics.fmean(logs)
    if n == 1:
        return Ratio(math.exp(mean), None, None, 1, None, None)
    sd = statistics.stdev(logs)
    half = _t_quantile(n - 1) * sd / math.sqrt(n)
    return Ratio(math.exp(mean), math.exp(mean - half), math.exp(mean + half), n, sd,
                 rounds_needed(sd))  # fmt: skip


def verdict(ratio: Ratio, higher_is_faster: bool) -> str:
    """``slower``/``faster`` when the interval excludes 1, else ``no change resolved``."""
    if ratio.low is None or ratio.high is None:
        return "no interval (one round)"
    if ratio.low > 1 or ratio.high < 1:
        faster = (ratio.low > 1) == higher_is_faster
        change = abs(ratio.ratio - 1) * 100
        return f"{'faster' if faster else 'slower'} ({change:.1f}%)"
    return "no change resolved"


def summarise(runs: list[dict]) -> dict[str, Ratio]:
    """Every stage's paired ratio over the counted rounds of ``runs`` (each: round, side,
    timings)."""
    counted = [r for r in runs if r["round"] >= 0]
    rounds = sorted({r["round"] for r in counted})
    by = {(r["round"], r["side"]): r["timings"] for r in counted}
    return {
        stage: paired_ratio(
            [by[(k, "current")].get(stage) for k in rounds],
            [by[(k, "against")].get(stage) for k in rounds],
        )
        for stage in STAGES
    }


def report_markdown(summary: dict[str, Ratio], runs: list[dict], meta: dict) -> str:
    """The report: what ran, and per stage the medians of both sides, the ratio and interval."""
    counted = [r for r in runs if r["round"] >= 0]

    def median(side: str, stage: str) -> str:
        values = [r["timings"].get(stage) for r in counted if r["side"] == side]
        values = [v for v in values if v is not None]
        return f"{statistics.median(values):.3f}" if values else "-"

    lines = [
        f"# This checkout ({meta['current']}) against {meta['against']} ({meta['against_commit']})",
        "",
        f"{meta['rounds']} alternating rounds (ABBA) after {meta['warmup']} warm-up round(s); "
        f"each run {meta['steps']} optimizer steps, an ID sample of {meta['id_samples']}; "
        f"overrides `{' '.join(meta['overrides']) or '(none)'}`. Ratio: this checkout / "
        f"{meta['against']}, the geometric mean over rounds with its {LEVEL:.0%} interval "
        "(Student's t over the rounds' log ratios); steps_per_s above 1 is faster, a time above "
        "1 slower.",
        "",
        "| stage | this checkout (median) | against (median) | ratio | 95% interval | verdict "
        "| rounds for +/-5% |",
        "|---|---:|---:|---:|---|---|---:|",
    ]
    for stage, ratio in summary.items():
        shown = f"{ratio.ratio:.3f}" if ratio.ratio is not None else "-"
        interval = f"[{ratio.low:.3f}, {ratio.high:.3f}]" if ratio.low is not None else "-"
        lines.append(
            f"| {stage} | {median('current', stage)} | {median('against', stage)} | {shown} "
            f"| {interval} | {verdict(ratio, STAGES[stage])} | {ratio.rounds_for_5pct or '-'} |"
        )
    return "\n".join(lines) + "\n"


# --- running the two sides -------------------------------------------------------------------


def git_in(tree: Path, *args: str) -> str:
    """A git command's output, run in ``tree``."""
    return subprocess.run(["git", *args], cwd=tree, capture_output=True, text=True,
                          check=True).stdout.strip()  # fmt: skip


def git(*args: str) -> str:
    """A git command's output, run in this checkout."""
    return git_in(REPO, *args)


def describe_current() -> str:
    """This checkout's commit, ``+dirty`` when ``src/`` or ``conf/`` hold uncommitted changes."""
    dirty = git("status", "--porcelain", "--", "src", "conf")
    return git("rev-parse", "--short", "HEAD") + ("+dirty" if dirty else "")


@contextlib.contextmanager
def checked_out(rev: str, where: Path) -> Iterator[Path]:
    """``rev`` in a temporary detached ``git worktree`` under ``where``, removed afterwards (only
    that one: no ``git worktree prune``, which would touch every worktree of the repository)."""
    tree = where / "against_tree"
    git("worktree", "add", "--detach", str(tree), rev)
    try:
        # its bytecode compiled now, as this checkout's already is: not in the first runs' stages
        if (tree / "src").is_dir():
            compile_all = [sys.executable, "-m", "compileall", "-q", str(tree / "src")]
            subprocess.run(compile_all, check=True)
        yield tree
    finally:
        try:
            git("worktree", "remove", "--force", str(tree))
        except subprocess.CalledProcessError as error:
            print(f"could not remove the worktree {tree}: {error.stderr.strip()}", flush=True)


def check_ran(record: dict, tree: Path, commit: str) -> None:
    """The run's record names ``commit`` as the code that made it (``environment.gelora_commit``,
    when the record has it): another gelora first on the path would time the wrong code."""
    ran = (record.get("environment") or {}).get("gelora_commit")
    if ran and not ran.startswith(commit):
        raise RuntimeError(
            f"the run from {tree} ran gelora at {ran}, not {commit}: another gelora comes "
            "first on the path (PYTHONPATH, a .pth file)"
        )


def run_side(tree: Path, run_dir: Path, overrides: list[str]) -> dict[str, float | None]:
    """One short default run of the code in ``tree`` (its ``src/`` first on the path), timed."""
    env = dict(os.environ, PYTHONPATH=str(tree / "src"), PYTHONUNBUFFERED="1")
    command = [sys.executable, "-m", "gelora.train", f"hydra.run.dir={run_dir}", *overrides]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    record_path = run_dir / "results.json"
    if done.returncode != 0 or not record_path.is_file():
        tail = (done.stderr or done.stdout)[-2000:]
        raise RuntimeError(f"the run from {tree} failed (exit {done.returncode}):\n{tail}")
    record = json.loads(record_path.read_text())
    check_ran(record, tree, git_in(tree, "rev-parse", "HEAD"))
    log_path = run_dir / "train.log"
    log_text = log_path.read_text() if log_path.is_file() else done.stdout + done.stderr
    return stage_timings(record, log_text, wall)


def run_rounds(trees: dict[str, Path], args: argparse.Namespace, work: Path) -> list[dict]:
    """Every run, warm-up rounds first (numbered -warmup..-1, not counted), in ABBA order."""
    overrides = [*run_overrides(args.steps, args.id_samples), *args.overrides]
    runs = []
    schedule = alternation(args.warmup + args.rounds)
    for index, order in enumerate(schedule):
        number = index - args.warmup
        for side in order:
            label = f"round {number}" if number >= 0 else f"warm-up {index + 1}"
            print(f"{label}: {side} ...", flush=True)
            timings = run_side(trees[side], work / f"{side}_{index}", overrides)
            runs.append({"round": number, "side": side, "timings": timings})
            print("  " + json.dumps(timings), flush=True)
    return runs


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--against", required=True, help="the earlier commit (any git rev)")
    parser.add_argument("--rounds", type=int, default=6, help="counted rounds (default 6)")
    parser.add_argument("--warmup", type=int, default=1, help="uncounted rounds first")
    parser.add_argument("--steps", type=int, default=40, help="optimizer steps per run")
    parser.add_argument("--id-samples", type=int, default=500, help="inputs in the ID sample")
    parser.add_argument("--work", type=Path, default=None, help="runs and worktree (temp)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for both sides")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.warmup < 0:
        parser.error(f"--rounds must be >= 1 and --warmup >= 0 (got {args.rounds}, {args.warmup})")
    try:
        run_overrides(args.steps, args.id_samples)
    except ValueError as error:
        parser.error(str(error))
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        against_commit = git("rev-parse", "--short", f"{args.against}^{{commit}}")
    except subprocess.CalledProcessError:
        sys.exit(f"bench_commits: error: --against {args.against!r} is not a commit of {REPO}")
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_commits_"))
    work.mkdir(parents=True, exist_ok=True)
    meta = {
        "current": describe_current(),
        "against": args.against,
        "against_commit": against_commit,
        "rounds": args.rounds,
        "warmup": args.warmup,
        "steps": args.steps,
        "id_samples": args.id_samples,
        "overrides": args.overrides,
        "order": [list(o) for o in alternation(args.warmup + args.rounds)],
    }
    with checked_out(against_commit, work) as tree:
        runs = run_rounds({"current": REPO, "against": tree}, args, work)
    summary = summarise(runs)
    report = report_markdown(summary, runs, meta)
    args.out.mkdir(parents=True, exist_ok=True)
    found = {**meta, "runs": runs, "ratios": {k: asdict(v) for k, v in summary.items()}}
    (args.out / "bench_commits.json").write_text(json.dumps(found, indent=1) + "\n")
    (args.out / "bench_commits.md").write_text(report)
    print(report, end="")
    print(f"wrote {args.out / 'bench_commits.md'} and bench_commits.json", flush=True)


if __name__ == "__main__":
    main()
