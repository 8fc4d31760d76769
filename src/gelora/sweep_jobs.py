"""Sweep jobs: the folder each one writes to, the line that says which job of how many it is,
the folders a sweep holds, and the wandb group its jobs share.

Only Hydra and OmegaConf are imported here, as in ``gelora.train``: ``--help`` stays fast.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

MAX_COMPONENT_BYTES = 200  # a folder name: under the common 255-byte limit, with room to spare
HASH_CHARS = 12
BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"
ESCAPES = (("%", "%25"), ("/", "%2F"))  # "%" first, so that an escape is never escaped twice


def job_dirname(overrides: str) -> str:
    """A sweep job's folder, relative to the sweep's: its overrides, each one whole and readable.

    ``overrides`` is Hydra's ``hydra.job.override_dirname``: the job's ``key=value`` overrides,
    sorted and joined by ``,``. They are packed, in that order, into folder names of at most
    ``MAX_COMPONENT_BYTES`` bytes (``,`` between overrides, ``/`` between folders), so a short
    set of overrides is one folder named after them and a long one nests a few folders deep.
    A ``/`` or ``%`` inside an override is written ``%2F`` or ``%25``: turning every ``/`` of the
    path back into ``,`` and undoing the escapes gives the overrides again, so distinct overrides
    get distinct folders and the same overrides the same folder (a resumed sweep finds its jobs).
    Only an override longer than a folder name on its own is shortened: its start and a hash of
    it.
    """
    tokens = [_escape(token) for token in split_overrides(overrides)]
    if not tokens:
        return "defaults"
    folders: list[list[str]] = [[]]
    for token in (_fit(token) for token in tokens):
        candidate = ",".join([*folders[-1], token])
        if folders[-1] and len(candidate.encode()) > MAX_COMPONENT_BYTES:
            folders.append([token])
        else:
            folders[-1].append(token)
    return "/".join(",".join(folder) for folder in folders)


def split_overrides(overrides: str) -> list[str]:
    """``a=1,b=[x,y],c='p,q'`` -> ``["a=1", "b=[x,y]", "c='p,q'"]``: commas inside brackets or
    quotes belong to a value."""
    tokens, current, depth, quote = [], [], 0, ""
    for char in overrides:
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "[{(":
            depth += 1
        elif char in "]})":
            depth = max(depth - 1, 0)
        elif char == "," and depth == 0:
            tokens.append("".join(current))
            current = []
            continue
        current.append(char)
    tokens.append("".join(current))
    return [token for token in tokens if token]


def _escape(token: str) -> str:
    for char, escape in ESCAPES:
        token = token.replace(char, escape)
    return token


def _fit(token: str) -> str:
    """The token, or its start and a hash of it when it alone exceeds a folder name."""
    encoded = token.encode()
    if len(encoded) <= MAX_COMPONENT_BYTES:
        return token
    digest = hashlib.sha1(encoded).hexdigest()[:HASH_CHARS]
    start = encoded[: MAX_COMPONENT_BYTES - HASH_CHARS - 1].decode(errors="ignore")
    return f"{start}-{digest}"


def sweep_axes(multirun_config: DictConfig) -> dict[str, int] | None:
    """Every swept key of a sweep and its number of values (1 for a fixed override), as Hydra's
    basic sweeper expands them: ``hydra.sweeper.params`` first, then the command line.

    ``None`` when another sweeper runs the sweep or the overrides cannot be parsed without the
    config repository (``glob(...)`` choices): the job count is then unknown.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser

    axes: dict[str, int] = {}
    try:
        hydra_cfg = multirun_config.hydra
        if hydra_cfg.sweeper.get("_target_") != BASIC_SWEEPER:
            return None
        params = hydra_cfg.sweeper.get("params")
        lines = [f"{key}={value}" for key, value in (params or {}).items()]
        lines += [str(line) for line in hydra_cfg.overrides.task]
        for override in OverridesParser.create().parse_overrides(lines):
            swept = override.is_sweep_override()
            values = len(list(override.sweep_string_iterator())) if swept else 1
            axes[override.get_key_element()] = values
    except Exception:  # a sweep this parser cannot expand alone: the count is unknown, no error
        return None
    return axes


WANDB_GROUP_CHARS = 128  # the longest group name wandb takes


def wandb_group(mode: object, sweep_dir: str, experiment_name: str) -> str:
    """The wandb group of a run (``${gelora_wandb_group:...}`` in ``conf/logger/wandb.yaml``).

    A sweep's jobs: the sweep folder's last two names (``multirun_outputs/<experiment>/<sweep_id>``
    gives ``<experiment>/<sweep_id>``; ``hydra.sweep.dir=results/table_cpu3/confirm`` gives
    ``table_cpu3/confirm``), so a sweep resumed in its folder, by ``sweep_id`` or by
    ``hydra.sweep.dir``, from any working directory, lands in the group it started in. A single
    run (``mode`` is Hydra's ``RunMode.RUN``): ``experiment_name``. A name longer than wandb takes
    keeps its end and a hash of the whole.
    """
    from hydra.types import RunMode

    if mode != RunMode.MULTIRUN:
        return experiment_name
    group = "/".join(Path(os.path.abspath(sweep_dir)).parts[-2:])
    if len(group) <= WANDB_GROUP_CHARS:
        return group
    digest = hashlib.sha1(group.encode()).hexdigest()[:HASH_CHARS]
    return f"{digest}-{group[-(WANDB_GROUP_CHARS - HASH_CHARS - 1) :]}"


def job_line(job_num: int, job_overrides: Sequence[str], sweep_dir: Path) -> str:
    """``job 3 of 8: method=lora seed=1``: the job's place in its sweep and its cell of the grid
    (its values of the swept keys), read from the sweep's ``multirun.yaml``, which Hydra writes
    before any job starts. Without a count (another sweeper, an unreadable file):
    ``job 3: <all of its overrides>``.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser

    axes = None
    multirun_yaml = sweep_dir / "multirun.yaml"
    with contextlib.suppress(OSError, OmegaConfBaseException):
        axes = sweep_axes(OmegaConf.load(multirun_yaml))
    place = f"job {job_num + 1}"
    if axes is None:
        return f"{place}: {' '.join(job_overrides) or 'defaults'}"
    parsed = OverridesParser.create().parse_overrides(list(job_overrides))
    cell = [
        line
        for line, override in zip(job_overrides, parsed, strict=True)
        if axes.get(override.get_key_element(), 1) > 1
    ]
    return f"{place} of {math.prod(axes.values())}: {' '.join(cell) or 'defaults'}"


# --- the sweep's end: one line per state, and an exit status that says whether all went well --

SUMMARY_STATES = ("completed", "skipped", "failed", "interrupted", "missing")


def job_folders(sweep_dir: Path) -> list[Path]:
    """Every job folder under ``sweep_dir``, however deep its overrides nest it (``job_dirname``):
    a folder holding ``.hydra/``, outside ``superseded/`` (runs moved aside); sorted."""
    jobs = (hydra_dir.parent for hydra_dir in sorted(sweep_dir.rglob(".hydra")))
    return [
        job
        for job in jobs
        if job != sweep_dir and "superseded" not in job.relative_to(sweep_dir).parts
    ]


def job_states(sweep_dir: Path, started: float | None = None) -> dict[str, list[str]]:
    """Every job folder under ``sweep_dir`` (a folder holding ``.hydra/``, outside
    ``superseded/``) by state: ``completed`` (a completed ``results.json`` written since
    ``started``), ``skipped`` (completed before it: this sweep found it done), ``failed``,
    ``interrupted``, ``missing`` (no record, or one that cannot be read); folders relative to
    ``sweep_dir``, sorted."""
    from gelora.record import RunRecord

    states: dict[str, list[str]] = {state: [] for state in SUMMARY_STATES}
    for job in job_folders(sweep_dir):
        relative = job.relative_to(sweep_dir)
        results = job / "results.json"
        try:
            status = RunRecord.read(results).status
        except (OSError, ValueError):
            status = "missing"
        if status == "completed" and started is not None and results.stat().st_mtime < started:
            status = "skipped"
        states.setdefault(status, []).append(relative.as_posix())
    return states


def summary_lines(states: dict[str, list[str]], sweep_dir: Path) -> list[str]:
    """``sweep <dir>: 6 completed, 2 skipped, 1 failed`` and one line per state that needs a
    look (failed, interrupted, missing) naming its folders."""
    counts = ", ".join(f"{len(jobs)} {state}" for state, jobs in states.items() if jobs)
    lines = [f"sweep {sweep_dir}: {counts or 'no job folder'}"]
    for state in ("failed", "interrupted", "missing"):
        if states.get(state):
            lines.append(f"  {state}: {', '.join(states[state])}")
    return lines


def shared_folders_line(sweep_dir: Path, folders: int) -> str | None:
    """A line when the sweep ran more jobs than it has job folders (two jobs given one folder,
    e.g. by a fixed ``hydra.sweep.subdir``: the second one's record cannot be written there);
    None when the counts agree or the job count is unknown (``sweep_axes``)."""
    with contextlib.suppress(OSError, OmegaConfBaseException):
        axes = sweep_axes(OmegaConf.load(sweep_dir / "multirun.yaml"))
        jobs = math.prod(axes.values()) if axes is not None else None
        if jobs is not None and folders < jobs:
            return (
                f"  {jobs} jobs ran into {folders} job folders: jobs shared a folder and some "
                "left no record of their own (does hydra.sweep.subdir name each job?)"
            )
    return None


class SweepSummary:
    """A Hydra callback (``hydra.callbacks`` in ``conf/train.yaml``): at the end of a sweep, one
    summary line per state with the folders of the jobs that did not complete, and exit status 1
    when any job failed, was interrupted or left no record (Hydra itself exits 0 whatever its
    jobs did)."""

    def __init__(self) -> None:
        import time

        self._started = time.time()

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        import time

        self._started = time.time()

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        states = job_states(sweep_dir, self._started)
        lines = summary_lines(states, sweep_dir)
        shared = shared_folders_line(sweep_dir, sum(len(jobs) for jobs in states.values()))
        print("\n".join([*lines, *([shared] if shared else [])]), flush=True)
        if states["failed"] or states["interrupted"] or states["missing"] or shared:
            raise SystemExit(1)

    # Hydra calls every hook of a callback; the others have nothing to do here.
    def on_run_start(self, config: DictConfig, **kwargs) -> None: ...
    def on_run_end(self, config: DictConfig, **kwargs) -> None: ...
    def on_job_start(self, config: DictConfig, **kwargs) -> None: ...
    def on_job_end(self, config: DictConfig, job_return=None, **kwargs) -> None: ...
