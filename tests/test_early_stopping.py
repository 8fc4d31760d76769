"""Training until validation stops improving: ``early_stopping.patience`` evaluations without an
improvement of ``val/<primary>`` stop a run before its step cap, and the record says so."""

from __future__ import annotations

import json

import pytest

from tests.helpers import TINY, gelora_train, run_in_process

LONG = ["trainer.max_steps=40", "trainer.max_epochs=20", "trainer.val_check_interval=1"]


def test_patience_stops_a_run_before_its_step_cap_and_the_record_says_so(tmp_path):
    # min_delta 1.0: no accuracy change can count as an improvement, so the run stops after the
    # first evaluation and `patience` more, at step 1 + 2 = 3 of at most 40. The tested
    # checkpoint is still the best validation score (no min_delta there).
    results = run_in_process(
        tmp_path, *TINY, *LONG, "early_stopping.patience=2", "early_stopping.min_delta=1.0"
    )
    assert results["status"] == "completed"
    assert results["stopped_early"] is True
    assert results["optimizer_steps"] == 3
    assert 1 <= results["best_step"] <= 3


def test_without_patience_the_step_cap_ends_the_run(tmp_path):
    results = run_in_process(tmp_path, *TINY, "trainer.max_steps=5", "trainer.max_epochs=20")
    assert results["stopped_early"] is False
    assert results["optimizer_steps"] == 5


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("early_stopping.patience=0", "early_stopping.patience must be an integer >= 1 or null"),
        ("early_stopping.min_delta=-1", "early_stopping.min_delta must be a finite number >= 0"),
    ],
)
def test_bad_stopping_settings_are_one_line(tmp_path, override, message):
    proc = gelora_train(tmp_path, *TINY, override)
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert json.loads((tmp_path / "results.json").read_text())["status"] == "failed"


def test_patience_that_runs_out_at_the_cap_is_not_an_early_stop(tmp_path):
    # Patience 2 with no improvement possible runs out at step 3, which is also the step cap: the
    # cap ended the run, so the record must not claim early stopping did.
    results = run_in_process(
        tmp_path,
        *TINY,
        "trainer.max_steps=3",
        "trainer.max_epochs=20",
        "trainer.val_check_interval=1",
        "early_stopping.patience=2",
        "early_stopping.min_delta=1.0",
    )
    assert results["optimizer_steps"] == 3
    assert results["stopped_early"] is False


@pytest.mark.parametrize(("patience", "steps", "stopped"), [(3, 4, True), (5, 6, False)])
def test_patience_in_the_last_epoch_is_an_early_stop_only_before_its_end(
    tmp_path, patience, steps, stopped
):
    # 3 steps an epoch, 2 epochs, no step cap: the epoch cap is step 6. Patience 3 runs out at
    # step 4, inside the last epoch (Lightning then leaves current_epoch == max_epochs, which
    # once read as "the cap ended it"); patience 5 runs out at step 6, the cap's last validation.
    results = run_in_process(
        tmp_path,
        *TINY,
        "trainer.max_steps=-1",
        "trainer.max_epochs=2",
        "trainer.val_check_interval=1",
        f"early_stopping.patience={patience}",
        "early_stopping.min_delta=1.0",
    )
    assert results["optimizer_steps"] == steps
    assert results["stopped_early"] is stopped
