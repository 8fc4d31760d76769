"""What a run prints: gelora's lines and the waits' summaries on the console, library chatter only
in ``train.log`` (at DEBUG level). The real model's load report and wandb's lines are checked on
the smoke run in ``test_train_end_to_end.py``."""

from __future__ import annotations

import logging
import re
import subprocess
from pathlib import Path

import pytest

from gelora.logs import ChatterAsDebug, HideChatter, logged_as_debug
from gelora.models import report_new_weights
from tests.helpers import TINY, gelora_train

SILENCED = ("GPU available", "TPU available", "Tip:", "Total FLOPs", "stepping batches", "LeafSpec")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    run_dir = tmp_path_factory.mktemp("console")
    # a process of its own: in a test worker, libraries' once-per-process warnings may have been
    # shown already, and their absence here would prove nothing
    return run_dir, gelora_train(run_dir, *TINY, "estimator.cache=false", new_process=True)


def test_the_console_leaves_out_library_chatter(tiny_run):
    _, proc = tiny_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    console = proc.stdout + proc.stderr
    for text in SILENCED:
        assert text not in console, text


def test_the_log_file_keeps_the_chatter_at_debug_level(tiny_run):
    run_dir, _ = tiny_run
    log_file = (run_dir / "train.log").read_text()
    assert re.search(r"\]\[DEBUG\] - GPU available: ", log_file)
    assert re.search(r"\]\[DEBUG\] - model summary:\n.*Trainable params", log_file, re.DOTALL)
    assert "[INFO] - trainable: " in log_file  # gelora's own count stays on the console


def test_the_waits_leave_a_summary_with_their_time(tiny_run):
    _, proc = tiny_run
    assert re.search(r"^hidden states: 32 inputs x 3 layers in \d+\.\d s$", proc.stdout, re.M)
    assert re.search(r"^intrinsic dimension: 3 layers in \d+\.\d s$", proc.stdout, re.M)


def test_the_last_line_is_the_results_path(tiny_run):
    run_dir, proc = tiny_run
    assert proc.stdout.splitlines()[-1] == f"results: {run_dir / 'results.json'}"


def _record(name: str, message: str, level: int = logging.INFO) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, message, None, None)


def test_chatter_is_hidden_from_the_console_and_relabelled_for_the_file():
    chatter = _record("lightning.pytorch.utilities.rank_zero", "GPU available: False, used: False")
    ours = _record("gelora.stages.fit", "GPU available: a gelora line says what it says")
    assert not HideChatter().filter(chatter) and HideChatter().filter(ours)
    assert ChatterAsDebug().filter(chatter) and chatter.levelname == "DEBUG"
    assert ChatterAsDebug().filter(ours) and ours.levelname == "INFO"


def test_a_library_report_can_be_moved_to_debug_for_one_block(caplog):
    library = logging.getLogger("tests.some_library")
    with caplog.at_level(logging.DEBUG), logged_as_debug("tests.some_library"):
        library.warning("a LOAD REPORT")
    library.warning("a real warning")
    levels = [(r.getMessage(), r.levelname) for r in caplog.records]
    assert levels == [("a LOAD REPORT", "DEBUG"), ("a real warning", "WARNING")]


def test_a_new_head_is_one_line_and_other_missing_weights_a_warning(caplog):
    info = {
        "missing_keys": {"classifier.bias", "classifier.weight", "bert.encoder.layer.0.x.weight"},
        "unexpected_keys": {"bert.embeddings.position_ids"},
    }
    with caplog.at_level(logging.DEBUG, logger="gelora"):
        report_new_weights(info, ["bert.pooler", "classifier"])
    lines = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert lines == [
        ("INFO", "new head: classifier.weight, classifier.bias"),
        (
            "WARNING",
            "weights missing from the checkpoint, randomly initialised: "
            "bert.encoder.layer.0.x.weight",
        ),
        ("DEBUG", "checkpoint weights the model does not use: bert.embeddings.position_ids"),
    ]
