"""Reading a sweep: every Hydra job directory under it, as one ``SweepRun`` row each.

A job's ``results.json`` is read as a ``RunRecord`` (its schema); a job without one is
``missing`` (killed before it could write), an unreadable one ``unreadable``: nothing is dropped.
Besides the test score a row keeps what a comparison must check: the fingerprint of the test rows
it was scored on (``test_rows``; runs are paired only on equal ones), the LoRA scaling rule, the
learning rate and the validation score (the only score learning-rate selection may look at).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from omegaconf import OmegaConf

from gelora.record import RunRecord


@dataclass
class SweepRun:
    """One job of a sweep, as its directory records it: a row of ``runs.csv``."""

    run_dir: str
    status: str
    method: str
    task: str
    seed: int | None
    metric: str | None = None
    score: float | None = None
    adapter_params: int | None = None
    trainable_params: int | None = None
    total_s: float | None = None
    test_rows: str | None = None
    scaling: str | None = None
    lr: float | None = None
    val_score: float | None = None
    error: str | None = None
    block_ranks: list[int] = field(default_factory=list)
    intrinsic_dims: list[float] = field(default_factory=list)
    trained_ranks: dict[str, int] = field(default_factory=dict)  # per matrix, at the end
    base_task: str | None = None  # with columns: the task before ``task`` named the column
    column: str | None = None  # with columns: the value of the column key, as text


@dataclass(frozen=True)
class JobIdentity:
    """What the job's composed config says it is, for jobs without (complete) results."""

    method: str
    task: str
    seed: int | None
    lr: float | None


def _job_identity(job_dir: Path) -> JobIdentity:
    config = OmegaConf.load(job_dir / ".hydra" / "config.yaml")
    choices = OmegaConf.load(job_dir / ".hydra" / "hydra.yaml").hydra.runtime.choices
    method = choices.get("method") or choices.get("rank_policy") or "?"
    lr = OmegaConf.select(
        config, "optimizer.lr", default=None, throw_on_resolution_failure=False
    )  # results.json's learning_rate wins; this is for jobs without one
    return JobIdentity(str(method), str(config.task.name), config.get("seed"), _float_or_none(lr))


def _float_or_none(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def validation_score(record: RunRecord) -> float | None:
    """``val/<metric>_best`` (the checkpoint's score), else the last ``val/<metric>``."""
    if record.metric is None or not record.metrics:
        return None
    best = record.metrics.get(f"val/{record.metric}_best")
    return best if best is not None else record.metrics.get(f"val/{record.metric}")


def read_run(job_dir: Path) -> SweepRun:
    """The job's ``results.json`` (a ``RunRecord``) as a row; ``missing`` without one."""
    job = _job_identity(job_dir)
    path = job_dir / "results.json"
    if not path.exists():
        return SweepRun(str(job_dir), "missing", job.method, job.task, job.seed, lr=job.lr)
    try:
        record = RunRecord.read(path)
    except (ValueError, TypeError) as error:
        return SweepRun(
            str(job_dir), "unreadable", job.method, job.task, job.seed, lr=job.lr, error=str(error)
        )
    return SweepRun(
        run_dir=str(job_dir),
        status=record.status,
        method=record.variant or job.method,
        task=record.task if record.task != "?" else job.task,
        seed=record.seed if record.seed is not None else job.seed,
        metric=record.metric,
        score=record.test_score,
        adapter_params=record.trainable_adapter_params,
        trainable_params=record.trainable_params,
        total_s=record.timings.get("total_s") if record.timings else None,
        test_rows=record.test_rows_sha256,
        scaling=(record.scaling or {}).get("text"),
        lr=record.learning_rate if record.learning_rate is not None else job.lr,
        val_score=validation_score(record),
        error=record.error,
        block_ranks=record.block_ranks or [],
        intrinsic_dims=record.intrinsic_dims or [],
        trained_ranks=trained_ranks(record),
    )


def trained_ranks(record: RunRecord) -> dict[str, int]:
    """The rank of every adapted matrix at the end of training: the plan's (``ranks``), except
    for AdaLoRA, whose plan is only its budget and which prunes its way to ``final_ranks``."""
    final = (record.method_summary or {}).get("final_ranks")
    return dict(final) if isinstance(final, dict) else dict(record.ranks or {})


def job_overrides(job_dir: Path) -> list[str]:
    return [str(o) for o in OmegaConf.load(job_dir / ".hydra" / "overrides.yaml")]


def overrides_label(overrides: Sequence[str], common: set[str]) -> str:
    """A job's overrides without those every job shares and without ``task`` and ``seed``: a row
    of an ablation, whose rows are settings rather than methods."""
    items = [
        o
        for o in overrides
        if o not in common and not o.startswith(("task=", "seed=", "sweep_id="))
    ]
    return ",".join(items) or "(defaults)"


def load_runs(sweep_dir: Path, rows: str = "method") -> list[SweepRun]:
    """Every job under ``sweep_dir`` (directories holding ``.hydra/config.yaml``).

    ``rows``: ``method`` groups runs by method; ``overrides`` by their other overrides.
    """
    if rows not in ("method", "overrides"):
        raise ValueError(f"rows must be 'method' or 'overrides', got {rows!r}")
    jobs = sorted(p.parent.parent for p in sweep_dir.rglob(".hydra/config.yaml"))
    if not jobs:
        raise FileNotFoundError(f"no Hydra job directories (with .hydra/) under {sweep_dir}")
    runs = [read_run(job) for job in jobs]
    if rows == "overrides":
        overrides = {job: job_overrides(job) for job in jobs}
        common = set.intersection(*(set(o) for o in overrides.values()))
        for job, run in zip(jobs, runs, strict=True):
            run.method = overrides_label(overrides[job], common)
    return runs


def split_by_column(runs: Sequence[SweepRun], key: str) -> list[SweepRun]:
    """Each run with ``task`` renamed ``"<task> <key>=<value>"``, ``value`` read from the job's
    ``.hydra/config.yaml`` (the setting it ran with: ``budget.rank`` for a budget curve), so that
    a table's columns, and the (task, seed) pairs, are per task *and* value. ``base_task`` and
    ``column`` keep the two parts. A job whose config lacks ``key`` is an error: a column mixing
    runs with and without the setting would not be one setting."""
    out = []
    for run in runs:
        config = OmegaConf.load(Path(run.run_dir) / ".hydra" / "config.yaml")
        value = OmegaConf.select(config, key, default=None, throw_on_resolution_failure=False)
        if value is None:
            raise ValueError(f"{run.run_dir}: its config has no value for {key!r}")
        text = str(value)
        out.append(replace(run, task=f"{run.task} {key}={text}", base_task=run.task, column=text))
    return out
