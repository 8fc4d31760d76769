"""How the tests run gelora: composed in process, or as a user runs it on the command line.

One place for the config folder, the quick sizes (``conf/debug/``) and the ways to run, so no
test module imports another.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import os
import subprocess
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

import gelora.config  # noqa: F401  (registers the schemas the configs are composed with)

CONF = Path(__file__).resolve().parents[1] / "conf"
TINY = ["model=tiny_bert", "debug=tiny"]  # a random 2-block BERT, 3 steps: seconds
SMOKE = ["debug=smoke"]  # the real default model, 8 steps on 240 examples
METRIC_RANGE = {"pearson": (-1, 1), "spearman": (-1, 1), "matthews": (-1, 1)}


def compose_train(*overrides: str, hydra_config: bool = False) -> DictConfig:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("train", overrides=list(overrides), return_hydra_config=hydra_config)


def run_in_process(out_dir: Path, *overrides: str) -> dict:
    """``gelora.pipeline.run`` on the composed config: results.json's content."""
    from gelora.pipeline import run

    return run(compose_train(*overrides, f"paths.output_dir={out_dir}"))


@dataclass(frozen=True)
class Ran:
    """What a command did: its exit code and what it wrote (``subprocess.CompletedProcess``'s
    fields that the tests read)."""

    returncode: int
    stdout: str
    stderr: str


def _logging_state() -> dict[str, tuple]:
    """Every logger's handlers, level, propagation and disabled flag (root as ``""``)."""
    loggers = {"": logging.getLogger()}
    loggers |= {
        name: logger
        for name, logger in logging.Logger.manager.loggerDict.items()
        if isinstance(logger, logging.Logger)
    }
    return {
        name: (logger, logger.handlers[:], logger.level, logger.propagate, logger.disabled)
        for name, logger in loggers.items()
    }


def _restore_logging(state: dict[str, tuple]) -> None:
    """Logging as ``_logging_state`` saw it: the in-process apps configure logging (Hydra's
    ``job_logging``) with handlers on streams that are gone once the command returns."""
    for logger in logging.Logger.manager.loggerDict.values():
        if isinstance(logger, logging.Logger) and logger.name not in state:
            logger.handlers.clear()
            logger.propagate = True
    for logger, handlers, level, propagate, disabled in state.values():
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate, logger.disabled = propagate, disabled


def run_console_script(entry, argv: list[str], cwd: Path | None = None) -> Ran:
    """A console script's function (``gelora.train.cli``) run in this process as the shell would
    run it: ``sys.argv`` as given, in ``cwd``, its stdout and stderr captured apart, a
    ``SystemExit`` as the exit code and an escaping exception as Python's exit 1 with its
    traceback. No interpreter start: torch, transformers and Lightning are imported once per
    test worker instead of about 6 s per command. ``new_process=True`` in the helpers below is
    for tests that need a process of their own (locks, signals, a clean environment)."""
    out, err = io.StringIO(), io.StringIO()
    saved_argv, saved_cwd, saved_logging = sys.argv, Path.cwd(), _logging_state()
    code = 0
    try:
        if cwd is not None:
            os.chdir(cwd)
        sys.argv = list(argv)
        # Hydra configures logging with dictConfig, which closes every existing handler
        # (pytest's log capture included): here it may only replace them, as restored below.
        with (
            contextlib.redirect_stdout(out),
            contextlib.redirect_stderr(err),
            mock.patch.object(logging, "shutdown", lambda *handlers: None),
        ):
            try:
                entry()
            except SystemExit as stop:
                code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
            except Exception:  # as the interpreter would end: the traceback on stderr, exit 1
                traceback.print_exc()
                code = 1
    finally:
        sys.argv = saved_argv
        os.chdir(saved_cwd)
        _restore_logging(saved_logging)  # Hydra's handlers write to this command's stream
    return Ran(code, out.getvalue(), err.getvalue())


def _train_cli():
    from gelora.train import cli

    return cli


def gelora_train(
    run_dir: Path, *overrides: str, timeout: int = 600, new_process: bool = False
) -> Ran | subprocess.CompletedProcess:
    """``gelora-train`` as a user runs it: in this process (``run_console_script``), or, with
    ``new_process``, in a new one."""
    argv = ["gelora-train", f"hydra.run.dir={run_dir}", *overrides]
    if not new_process:
        return run_console_script(_train_cli(), argv)
    return subprocess.run(
        [sys.executable, "-m", "gelora.train", *argv[1:]],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def gelora_sweep(
    root: Path, *overrides: str, sweep_id: str = "test", new_process: bool = False
) -> Ran | subprocess.CompletedProcess:
    """``gelora-train -m`` in ``root`` (where ``multirun_outputs/`` lands): in this process, or,
    with ``new_process``, in a new one."""
    argv = ["gelora-train", "-m", f"sweep_id={sweep_id}", *overrides]
    if not new_process:
        return run_console_script(_train_cli(), argv, cwd=root)
    return subprocess.run(
        [sys.executable, "-m", "gelora.train", *argv[1:]],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=root,
    )


def gelora_plan(*arguments: str, new_process: bool = False) -> Ran | subprocess.CompletedProcess:
    """``gelora-plan`` as a user runs it: in this process, or, with ``new_process``, the
    installed console script in a new one."""
    if not new_process:
        from gelora.plan.cli import main as plan_cli

        return run_console_script(plan_cli, ["gelora-plan", *arguments])
    script = Path(sys.executable).parent / "gelora-plan"
    return subprocess.run([str(script), *arguments], capture_output=True, text=True, timeout=300)


def assert_not_successful(run_dir: Path) -> None:
    results = run_dir / "results.json"
    if results.exists():
        assert json.loads(results.read_text())["status"] != "completed"


def assert_scored(results: dict, metrics: list[str], prefixes: tuple[str, ...] = ("test",)):
    assert results["status"] == "completed"
    assert results["metric"] == metrics[0] and results["metric_names"] == metrics
    for prefix in prefixes:
        for name in metrics:
            value = results["metrics"][f"{prefix}/{name}"]
            low, high = METRIC_RANGE.get(name, (0, 1))
            assert math.isfinite(value) and low <= value <= high, (prefix, name, value)
    assert f"val/{metrics[0]}_best" in results["metrics"]
