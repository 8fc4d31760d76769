"""Reading a sweep: every Hydra job directory under it, as one ``SweepRun`` row each.

A job's ``results.json`` is read as a ``RunRecord`` (its schema); a job without one is
``missing`` (killed before it could write), an unreadable one ``unreadable``: nothing is dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
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
    error: str | None = None
    block_ranks: list[int] = field(default_factory=list)
    intrinsic_dims: list[float] = field(default_factory=list)


def _job_identity(job_dir: Path) -> tuple[str, str, int | None]:
    """Method, task and seed from the job's composed config, for jobs without results."""
    config = OmegaConf.load(job_dir / ".hydra" / "config.yaml")
    choices = OmegaConf.load(job_dir / ".hydra" / "hydra.yaml").hydra.runtime.choices
    method = choices.get("method") or choices.get("rank_policy") or "?"
    return str(method), str(config.task.name), config.get("seed")


def read_run(job_dir: Path) -> SweepRun:
    """The job's ``results.json`` (a ``RunRecord``) as a row; ``missing`` without one."""
    method, task, seed = _job_identity(job_dir)
    path = job_dir / "results.json"
    if not path.exists():
        return SweepRun(str(job_dir), "missing", method, task, seed)
    try:
        record = RunRecord.read(path)
    except (ValueError, TypeError) as error:
        return SweepRun(str(job_dir), "unreadable", method, task, seed, error=str(error))
    return SweepRun(
        run_dir=str(job_dir),
        status=record.status,
        method=record.variant or method,
        task=record.task if record.task != "?" else task,
        seed=record.seed if record.seed is not None else seed,
        metric=record.metric,
        score=record.test_score,
        adapter_params=record.trainable_adapter_params,
        trainable_params=record.trainable_params,
        total_s=record.timings.get("total_s") if record.timings else None,
        error=record.error,
        block_ranks=record.block_ranks or [],
        intrinsic_dims=record.intrinsic_dims or [],
    )


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
