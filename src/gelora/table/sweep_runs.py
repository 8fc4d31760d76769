"""Reading a sweep: every Hydra job directory under it, as one ``SweepRun`` row each.

A job's ``results.json`` is read as a ``RunRecord`` (its schema); a job without one is
``missing`` (killed before it could write). A job one of whose files cannot be read (a broken
``.hydra/*.yaml``, a ``results.json`` that is not JSON or not a run record) is a ``SkippedJob``:
named, with the file and why, never a row and never the end of the table (``load_sweep``).
Besides the test score a row keeps what a comparison must check: the fingerprint of the test rows
it was scored on (``test_rows``; runs are paired only on equal ones), the LoRA scaling rule, the
learning rate and the validation score (the only score learning-rate selection may look at).
Its adapter parameters are those of the tested weights (AdaLoRA prunes from above its budget:
``method_summary.tested_adapter_params``, or ``final_adapter_params`` at the end of training in
records older than it; ``initial_adapter_params`` keeps the start), beside the budget in
parameters and whether early stopping ended the run.

A row's ``task`` is its table column, which holds one data set scored one way
(``label_columns``): the task's name (``task_name``), for a user's data set (a task config with
``train_file``, e.g. ``from_files``) its files, and, only where runs of one such name differ, the
metric and the test rows (row count and sha256) in brackets. Runs are never pooled across data
sets, metrics or test rows; a record older than fingerprints (no ``eval_rows``) joins its task's
one row set.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from gelora.record import RunRecord
from gelora.run_folder import superseded

log = logging.getLogger(__name__)


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
    adapter_params: int | None = None  # of the tested weights (``final_adapter_params``)
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
    task_name: str | None = None  # the task config's name (``lr_choice`` keys); ``task`` if None
    data: str | None = None  # a user's data set: its files (``data_label``); None: a named task
    test_row_count: int | None = None  # rows of the test split (``eval_rows``)
    best_step: int | None = None  # optimizer step of the best validation (the tested checkpoint)
    optimizer_steps: int | None = None  # optimizer steps trained
    stopped_early: bool | None = None  # early_stopping.patience ended it before its step cap
    budget_params: int | None = None  # the budget in parameters (None: an unbudgeted method)
    initial_adapter_params: int | None = None  # at the start, where a method prunes (AdaLoRA)
    sensitivity: dict[str, Any] | None = None  # the plan over the ID sample's half-samples
    plan_draws: dict[str, Any] | None = None  # plans over batch draws (``stability_seeds``)
    peak_rss_mb: float | None = None  # RunRecord.cost: the process's peak resident memory
    cuda_peak_mb: float | None = None  # torch's peak CUDA allocation
    samples_per_s: float | None = None  # training throughput
    tokens_per_s: float | None = None
    metric_mode: str | None = None  # max or min, as the record states it (RunRecord.metric_modes)

    @property
    def best_at_last(self) -> bool | None:
        """Whether the best validation came at the last evaluation (``best_step`` equal to
        ``optimizer_steps``: the score may still have been rising); None when not recorded."""
        if self.best_step is None or self.optimizer_steps is None:
            return None
        return self.best_step >= self.optimizer_steps


@dataclass(frozen=True)
class SkippedJob:
    """A job left out of the table because one of its files cannot be read."""

    job_dir: str
    file: str  # the file that could not be read
    shown: str  # that file, relative to the sweep directory (captions)
    reason: str  # short: "not valid YAML", "not valid JSON", "not a run record", ...
    detail: str  # the error, on one line

    def warning(self) -> str:
        return f"skipped {self.file}: {self.reason} ({self.detail})"


class UnreadableJob(Exception):
    """A job file that cannot be read: ``reason`` short, ``detail`` the error."""

    def __init__(self, path: Path, reason: str, error: BaseException) -> None:
        self.path, self.reason = path, reason
        text = " ".join(str(error).split())
        text = text if len(text) <= 200 else text[:197] + "..."
        self.detail = f"{type(error).__name__}: {text}" if text else type(error).__name__
        super().__init__(f"{path}: {reason} ({self.detail})")


# What reading a job's files can raise when a file is broken (not when gelora is): OSError (no
# file, no permission), a YAML or JSON syntax error, and a file of the wrong shape (OmegaConf's
# errors, a missing key, a list where a mapping belongs).
READ_ERRORS = (
    OSError, ValueError, TypeError, KeyError, AttributeError, yaml.YAMLError,
    OmegaConfBaseException,
)  # fmt: skip


def _fast_yaml_loader() -> type:
    """OmegaConf's YAML loader (``omegaconf._utils.get_yaml_loader``: YAML 1.2 floats such as
    ``1e-3``, no timestamps, duplicate keys refused) on libyaml's C parser where PyYAML has it.
    ``OmegaConf.load`` parses in pure Python: reading a 220-job sweep's 440 Hydra files took
    about 11 s of a ``gelora-table`` call on this machine, the C parser a small part of that."""
    from omegaconf._utils import get_yaml_loader

    rules = get_yaml_loader()
    parser = getattr(yaml, "CSafeLoader", None)
    if parser is None:
        return rules

    class FastOmegaConfLoader(parser):  # type: ignore[misc, valid-type]
        yaml_implicit_resolvers = rules.yaml_implicit_resolvers
        yaml_constructors = rules.yaml_constructors

        def construct_mapping(self, node: yaml.Node, deep: bool = False) -> Any:
            seen: set[str] = set()
            for key, _ in node.value:
                if key.tag != yaml.resolver.BaseResolver.DEFAULT_SCALAR_TAG:
                    continue
                if key.value in seen:
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping", node.start_mark,
                        f"found duplicate key {key.value}", key.start_mark,
                    )  # fmt: skip
                seen.add(key.value)
            return super().construct_mapping(node, deep=deep)

    return FastOmegaConfLoader


_YAML_LOADER = _fast_yaml_loader()


def load_plain_yaml(path: Path) -> Any:
    """The file's YAML as plain values, read as ``OmegaConf.load`` reads it (its float and key
    rules), or ``UnreadableJob`` saying what is wrong with the file."""
    try:
        with open(path, encoding="utf-8") as stream:
            return yaml.load(stream, Loader=_YAML_LOADER)  # a safe loader (SafeLoader rules)
    except yaml.YAMLError as error:
        raise UnreadableJob(path, "not valid YAML", error) from error
    except READ_ERRORS as error:
        raise UnreadableJob(path, "cannot be read", error) from error


@dataclass(frozen=True)
class JobIdentity:
    """What the job's composed config says it is, for jobs without (complete) results."""

    method: str
    task: str
    seed: int | None
    config: ConfigValues | None = field(default=None, repr=False, compare=False)
    task_config: dict[str, Any] | None = None  # the ``task`` node, as plain values
    max_steps: int | None = None  # ``trainer.max_steps``: the step cap the job ran under
    max_epochs: int | None = None  # ``trainer.max_epochs``: the epoch cap, counted in steps below
    patience: int | None = None  # ``early_stopping.patience``: None, trained to the cap

    @cached_property
    def lr(self) -> float | None:
        """``optimizer.lr`` of the config, for a job whose record does not say its rate: read
        only then, because an experiment's rate is an interpolation through Hydra's choices,
        which costs a ``DictConfig`` to find unresolvable here."""
        return None if self.config is None else _float_or_none(self.config.select("optimizer.lr"))


class ConfigValues:
    """A job's composed config read as plain values, and ``select`` like ``OmegaConf.select``
    (``throw_on_resolution_failure=False``): building the ``DictConfig`` of a whole job config
    cost a ``gelora-table`` call seconds, so it is built only when a selected value is an
    interpolation."""

    def __init__(self, data: Any) -> None:
        if not isinstance(data, dict):
            raise TypeError(f"a job config is a mapping, not {type(data).__name__}")
        self.data = data
        self._config: DictConfig | None = None

    def select(self, key: str) -> Any:
        value: Any = self.data
        for part in key.split("."):
            if not isinstance(value, dict) or part not in value:
                return None
            value = value[part]
        if isinstance(value, str) and "${" in value:
            if self._config is None:
                self._config = OmegaConf.create(self.data)
            return OmegaConf.select(
                self._config, key, default=None, throw_on_resolution_failure=False
            )
        return value


def _job_identity(job_dir: Path) -> JobIdentity:
    config_path, hydra_path = job_dir / ".hydra" / "config.yaml", job_dir / ".hydra" / "hydra.yaml"
    try:
        config = ConfigValues(load_plain_yaml(config_path))
        task_config, name = config.data["task"], config.select("task.name")
        if not isinstance(task_config, dict) or name is None:
            raise KeyError("task.name")
        name, seed = str(name), config.select("seed")
        max_steps, max_epochs, patience = (
            config.select(key)
            for key in ("trainer.max_steps", "trainer.max_epochs", "early_stopping.patience")
        )
    except READ_ERRORS as error:
        raise UnreadableJob(config_path, "not a job config", error) from error
    hydra = load_plain_yaml(hydra_path)  # a plain mapping: only the choices are read
    try:
        choices = hydra["hydra"]["runtime"]["choices"]
        method = choices.get("method") or choices.get("rank_policy") or "?"
    except READ_ERRORS as error:
        raise UnreadableJob(hydra_path, "not Hydra's record of the job", error) from error
    cap = max_steps if isinstance(max_steps, int) and max_steps > 0 else None
    epochs = max_epochs if isinstance(max_epochs, int) and max_epochs >= 0 else None
    waits = patience if isinstance(patience, int) and patience > 0 else None
    return JobIdentity(str(method), name, seed, config, task_config, cap, epochs, waits)


def _stopped_before_cap(record: RunRecord, job: JobIdentity) -> bool | None:
    """Whether early stopping ended the run before its step cap, the smaller of
    ``trainer.max_steps`` and ``max_epochs`` epochs of the recorded training rows.

    Counted from the steps when the cap is known, because two releases recorded it wrongly:
    before 2026-12-02 a patience that ran out at the cap's own last validation said ``true``;
    until the step-counted cap (2026-12-02, later) one that ran out inside the last epoch said
    ``false``. Without a known cap, the record's own flag.
    """
    cap = _step_cap(record, job)
    steps = record.optimizer_steps
    if record.status != "completed" or cap is None or not isinstance(steps, int):
        return record.stopped_early
    if steps >= cap:
        return False
    return True if job.patience is not None else record.stopped_early


def _step_cap(record: RunRecord, job: JobIdentity) -> int | None:
    """The job's step cap from its config and recorded training rows (None: not known). The
    epoch term is counted for one process only (a distributed run splits each epoch's batches)."""
    caps = [job.max_steps] if job.max_steps is not None else []
    rows = (record.task_sizes or {}).get("train")
    batch_size = (job.task_config or {}).get("batch_size")
    one_process = (record.distributed or {}).get("world_size", 1) == 1
    if (
        job.max_epochs is not None
        and one_process
        and isinstance(rows, int)
        and isinstance(batch_size, int)
    ):
        caps.append(job.max_epochs * -(-rows // batch_size))
    return min(caps, default=None)


def _short_path(value: str) -> str:
    """A data file as a column header shows it: as written when relative, the last two parts of
    an absolute path (which names the machine's folders more than the data)."""
    path = Path(value)
    return value if not path.is_absolute() else ".../" + "/".join(path.parts[-2:])


def data_label(task_config: dict[str, Any] | None) -> str | None:
    """A user's data set by its files: ``from_files(train.csv)``, or with the other splits'
    files ``from_files(train=train.csv, test=test.csv)``; None for a task without
    ``train_file`` (a named task: its name says which data)."""
    if not isinstance(task_config, dict) or not isinstance(task_config.get("train_file"), str):
        return None
    name = task_config.get("name") or "from_files"
    files = {
        split: _short_path(value)
        for split in ("train", "validation", "test")
        if isinstance(value := task_config.get(f"{split}_file"), str)
    }
    if len(files) == 1:
        return f"{name}({files['train']})"
    return f"{name}(" + ", ".join(f"{split}={path}" for split, path in files.items()) + ")"


def _float_or_none(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def validation_score(record: RunRecord) -> float | None:
    """``val/<metric>_best`` (the checkpoint's score), else the last ``val/<metric>``."""
    if record.metric is None or not record.metrics:
        return None
    best = record.metrics.get(f"val/{record.metric}_best")
    return best if best is not None else record.metrics.get(f"val/{record.metric}")


def read_run(job_dir: Path) -> SweepRun:
    """The job's ``results.json`` (a ``RunRecord``) as a row; ``missing`` without one.

    Raises ``UnreadableJob`` when the job's config or record cannot be read."""
    job = _job_identity(job_dir)
    path = job_dir / "results.json"
    if not path.exists():
        return SweepRun(
            str(job_dir), "missing", job.method, job.task, job.seed, lr=job.lr,
            task_name=job.task, data=data_label(job.task_config),
        )  # fmt: skip
    try:
        return _run_from_record(job_dir, job, RunRecord.read(path))
    except json.JSONDecodeError as error:
        raise UnreadableJob(path, "not valid JSON", error) from error
    except READ_ERRORS as error:
        raise UnreadableJob(path, "not a run record", error) from error


def _run_from_record(job_dir: Path, job: JobIdentity, record: RunRecord) -> SweepRun:
    task = record.task if record.task != "?" else job.task
    config = record.config if isinstance(record.config, dict) else {}
    task_config = config.get("task") if isinstance(config.get("task"), dict) else job.task_config
    test_rows = ((record.eval_rows or {}).get("test") or {}).get("rows")
    return SweepRun(
        run_dir=str(job_dir),
        status=record.status,
        method=record.variant or job.method,
        task=task,
        task_name=task,
        data=data_label(task_config),
        test_row_count=test_rows if isinstance(test_rows, int) else None,
        seed=record.seed if record.seed is not None else job.seed,
        metric=record.metric,
        metric_mode=(record.metric_modes or {}).get(record.metric),
        score=record.test_score,
        adapter_params=final_adapter_params(record),
        initial_adapter_params=record.trainable_adapter_params,
        budget_params=record.budget_params,
        stopped_early=_stopped_before_cap(record, job),
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
        best_step=record.best_step,
        optimizer_steps=record.optimizer_steps,
        sensitivity=record.rank_sensitivity if isinstance(record.rank_sensitivity, dict) else None,
        plan_draws=_plan_draws(record),
        **_cost_fields(record.cost),
    )


def _plan_draws(record: RunRecord) -> dict[str, Any] | None:
    """``method_summary.plan_draws``: an allocator's plans over batch draws, where recorded."""
    draws = (record.method_summary or {}).get("plan_draws")
    return draws if isinstance(draws, dict) and isinstance(draws.get("ranks"), list) else None


def _cost_fields(cost: Any) -> dict[str, float | None]:
    """The row's cost columns from ``RunRecord.cost`` (records older than it: none)."""
    cost = cost if isinstance(cost, dict) else {}
    return {
        "peak_rss_mb": cost.get("peak_rss_mb"),
        "cuda_peak_mb": cost.get("cuda_peak_allocated_mb"),
        "samples_per_s": cost.get("samples_per_s"),
        "tokens_per_s": cost.get("tokens_per_s"),
    }


def final_adapter_params(record: RunRecord) -> int | None:
    """The parameters of the tested adapters: the plan's (``trainable_adapter_params``), except for
    AdaLoRA, which starts above its budget (``init_r``) and prunes its way to a budget matched in
    rank units only: ``method_summary.tested_adapter_params`` (the unpruned ranks of the tested
    checkpoint, which early stopping or a best-validation checkpoint saved before the last pruning
    can leave above the end of training's), else ``final_adapter_params`` (records before it)."""
    summary = record.method_summary or {}
    for key in ("tested_adapter_params", "final_adapter_params"):  # the tested weights first
        if isinstance(summary.get(key), int):
            return summary[key]
    return record.trainable_adapter_params


def trained_ranks(record: RunRecord) -> dict[str, int]:
    """The rank of every adapted matrix at the end of training: the plan's (``ranks``), except
    for AdaLoRA, whose plan is only its budget and which prunes its way to ``final_ranks``."""
    final = (record.method_summary or {}).get("final_ranks")
    return dict(final) if isinstance(final, dict) else dict(record.ranks or {})


def job_overrides(job_dir: Path) -> list[str]:
    path = job_dir / ".hydra" / "overrides.yaml"
    overrides = load_plain_yaml(path)
    try:
        return [str(o) for o in overrides]
    except READ_ERRORS as error:
        raise UnreadableJob(path, "not a list of overrides", error) from error


def overrides_label(overrides: Sequence[str], common: set[str]) -> str:
    """A job's overrides without those every job shares and without ``task`` and ``seed``: a row
    of an ablation, whose rows are settings rather than methods."""
    items = [
        o
        for o in overrides
        if o not in common and not o.startswith(("task=", "seed=", "sweep_id="))
    ]
    return ",".join(items) or "(defaults)"


@dataclass
class Sweep:
    """A sweep directory read: a row per readable job, and the jobs skipped."""

    runs: list[SweepRun]
    skipped: list[SkippedJob]


def load_sweep(sweep_dir: Path, rows: str = "method") -> Sweep:
    """Every job under ``sweep_dir`` (directories holding ``.hydra/config.yaml``): a row for
    each, its column labelled by ``label_columns``; a job with a file that cannot be read is
    skipped, and named with the file and why.

    ``rows``: ``method`` groups runs by method; ``overrides`` by their other overrides.
    """
    if rows not in ("method", "overrides"):
        raise ValueError(f"rows must be 'method' or 'overrides', got {rows!r}")
    jobs = sorted(
        p.parent.parent
        for p in sweep_dir.rglob(".hydra/config.yaml")
        if not superseded(p, sweep_dir)  # older runs moved aside by a fresh run in their folder
    )
    skipped = _records_without_config(sweep_dir, set(jobs))
    if not jobs and not skipped:
        raise FileNotFoundError(f"no Hydra job directories (with .hydra/) under {sweep_dir}")
    runs, overrides = [], {}
    for job in jobs:
        try:
            run = read_run(job)
            if rows == "overrides":
                overrides[job] = job_overrides(job)
        except UnreadableJob as error:
            shown = str(error.path.relative_to(sweep_dir)) if error.path.is_relative_to(
                sweep_dir) else str(error.path)  # fmt: skip
            skipped.append(SkippedJob(str(job), str(error.path), shown, error.reason, error.detail))
            continue
        runs.append(run)
    if rows == "overrides" and overrides:
        common = set.intersection(*(set(o) for o in overrides.values()))
        for run in runs:
            run.method = overrides_label(overrides[Path(run.run_dir)], common)
    return Sweep(label_columns(runs), skipped)


def _records_without_config(sweep_dir: Path, jobs: set[Path]) -> list[SkippedJob]:
    """Run records (``results.json``) in folders without ``.hydra/config.yaml``: their method,
    task and seed cannot be read, so they are skipped, each named, never silently dropped."""
    found = []
    for record in sorted(sweep_dir.rglob("results.json")):
        if record.parent in jobs or superseded(record, sweep_dir):
            continue
        found.append(
            SkippedJob(
                str(record.parent),
                str(record),
                str(record.relative_to(sweep_dir)),
                "no .hydra/config.yaml beside it",
                "a run record without the job's Hydra config: method, task and seed unknown",
            )
        )
    return found


def load_runs(sweep_dir: Path, rows: str = "method") -> list[SweepRun]:
    """``load_sweep``'s rows; each skipped job is a warning on the ``gelora`` log."""
    sweep = load_sweep(sweep_dir, rows)
    for job in sweep.skipped:
        log.warning("%s", job.warning())
    return sweep.runs


def fingerprint_text(run: SweepRun) -> str:
    """The test rows a run was scored on, short: ``1000 test rows, sha256 1a2b3c4d``."""
    if run.test_rows is None:
        return "test rows not recorded"
    count = f"{run.test_row_count} test rows" if run.test_row_count is not None else "test rows"
    return f"{count}, sha256 {run.test_rows[:8]}"


def label_columns(runs: Sequence[SweepRun]) -> list[SweepRun]:
    """Each run with ``task`` set to its column: the data (a user's data set by its files, else
    the task's name), and where runs of one data label differ in metric or test rows, the
    metric and the rows in brackets, so that no cell pools them. A run that does not say (a
    missing job; a record older than ``eval_rows``) joins its label's only metric or row set,
    and where there are several, a column of its own (``test rows not recorded``)."""
    base = {id(r): r.data or r.task for r in runs}
    out = []
    for run in runs:
        mine = [r for r in runs if base[id(r)] == base[id(run)]]
        metrics = sorted({r.metric for r in mine if r.metric is not None})
        row_sets = sorted({r.test_rows for r in mine if r.test_rows is not None})
        parts = []
        if len(metrics) > 1:
            parts.append(run.metric or "metric not recorded")
        if len(row_sets) > 1:
            parts.append(fingerprint_text(run))
        label = base[id(run)] + (f" [{'; '.join(parts)}]" if parts else "")
        out.append(replace(run, task=label, task_name=run.task_name or run.task))
    return out


def row_set_splits(runs: Sequence[SweepRun]) -> dict[str, dict[str, int]]:
    """Per data label whose runs were scored on several test-row sets: each row set's text and
    how many runs it holds (as ``label_columns`` split them into columns)."""
    by_base: dict[str, dict[str, int]] = {}
    for run in runs:
        if run.test_rows is not None:
            texts = by_base.setdefault(run.data or run.task_name or run.task, {})
            key = fingerprint_text(run).replace(" test rows,", " rows,")
            texts[key] = texts.get(key, 0) + 1
    return {base: texts for base, texts in by_base.items() if len(texts) > 1}


def split_by_column(runs: Sequence[SweepRun], key: str) -> list[SweepRun]:
    """Each run with ``task`` renamed ``"<task> <key>=<value>"``, ``value`` read from the job's
    ``.hydra/config.yaml`` (the setting it ran with: ``budget.rank`` for a budget curve), so that
    a table's columns, and the (task, seed) pairs, are per task *and* value. ``base_task`` and
    ``column`` keep the two parts. A job whose config lacks ``key`` is an error: a column mixing
    runs with and without the setting would not be one setting."""
    out = []
    for run in runs:
        path = Path(run.run_dir) / ".hydra" / "config.yaml"
        try:
            value = ConfigValues(load_plain_yaml(path)).select(key)
        except READ_ERRORS as error:
            raise UnreadableJob(path, "not a job config", error) from error
        if value is None:
            raise ValueError(f"{run.run_dir}: its config has no value for {key!r}")
        text = str(value)
        out.append(replace(run, task=f"{run.task} {key}={text}", base_task=run.task, column=text))
    return out
