"""A run killed mid-training resumes from its last checkpoint with its saved rank plan and
ends where an uninterrupted run ends: same optimizer steps, same data, same result."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.helpers import TINY

RUN = [
    *TINY,
    "task.max_train_samples=160",  # 10 batches of 16 per epoch
    "trainer.max_steps=-1",
    "trainer.max_epochs=2",
    "trainer.val_check_interval=5",
    "checkpoint_every_n_steps=3",
]


def _ctrl_c_as_at_a_terminal() -> None:
    """In the child, before it starts: Ctrl-C (SIGINT) back to its default. A shell script that
    starts a job in the background (``nohup pytest &``) has it ignored, the child inherits that,
    and Python then never installs its KeyboardInterrupt handler: the Ctrl-C tests would send a
    signal the run cannot see."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def train(run_dir: Path, *overrides: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "gelora.train", f"hydra.run.dir={run_dir}", *RUN, *overrides],
        capture_output=True,
        text=True,
        timeout=600,
        preexec_fn=_ctrl_c_as_at_a_terminal,
    )


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> dict:
    run_dir = tmp_path_factory.mktemp("whole")
    proc = train(run_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((run_dir / "results.json").read_text()) | {"run_dir": str(run_dir)}


def adapter_weights(run_dir: Path) -> dict[str, list]:
    """The exported adapter's tensors, as exact lists."""
    from safetensors.torch import load_file

    tensors = load_file(run_dir / "adapter" / "adapter_model.safetensors")
    return {name: tensor.tolist() for name, tensor in sorted(tensors.items())}


@pytest.mark.parametrize(
    ("signal_name", "resumed_step"),
    [
        ("SIGKILL", 6),  # the last periodic checkpoint
        # saved at the signal; slow: SIGINT's graceful stop (the same Lightning handler) is resumed
        # to completion in test_ctrl_c_is_recorded_interrupted_and_the_printed_command_resumes_it
        pytest.param("SIGTERM", 7, marks=pytest.mark.slow),
    ],
)
def test_killed_run_resumes_to_the_same_end(tmp_path, uninterrupted, signal_name, resumed_step):
    fault = (
        "+extra_callbacks.fault={_target_: tests.faults.SignalAtStep, step: 7, "
        f"signal_name: {signal_name}}}"
    )
    killed = train(tmp_path, fault)
    assert killed.returncode != 0
    if signal_name == "SIGKILL":
        assert killed.returncode == -signal.SIGKILL
        assert not (tmp_path / "results.json").exists()  # nothing can be written on SIGKILL
    else:
        assert killed.returncode == 143
        assert json.loads((tmp_path / "results.json").read_text())["status"] == "interrupted"
    saved = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert saved["global_step"] == resumed_step

    resumed = train(tmp_path, fault)  # the same command: a resume keeps the run's settings
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "with its saved rank plan" in resumed.stdout
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["status"] == "completed"
    assert results["resumed_from"]["optimizer_step"] == resumed_step
    assert results["optimizer_steps"] == uninterrupted["optimizer_steps"] == 20
    assert results["ranks"] == uninterrupted["ranks"]
    assert RankPlanOf(saved) == results["ranks"]
    # Same batches in the same order, the same dropout masks (the generators' states travel in
    # the checkpoint), from the same weights: the same trained adapter, bit for bit.
    for key in ("test/accuracy", "train/loss", "val/accuracy_best"):
        assert results["metrics"][key] == uninterrupted["metrics"][key], key
    assert adapter_weights(tmp_path) == adapter_weights(Path(uninterrupted["run_dir"]))


def test_ctrl_c_is_recorded_interrupted_and_the_printed_command_resumes_it(tmp_path, uninterrupted):
    # issue 44: Ctrl-C recorded the run as failed ("SystemExit: 1", Lightning's exit during its
    # KeyboardInterrupt handling) and said nothing of how to resume it
    import shlex

    fault = (
        "+extra_callbacks.fault={_target_: tests.faults.SignalAtStep, step: 7, signal_name: SIGINT}"
    )
    stopped = train(tmp_path, fault)
    assert stopped.returncode != 0
    record = json.loads((tmp_path / "results.json").read_text())
    assert record["status"] == "interrupted", record["error"]
    console = (stopped.stdout + stopped.stderr).splitlines()
    lines = [line for line in console if "resume it with: " in line]
    assert lines, stopped.stderr[-2000:]
    words = shlex.split(lines[-1].split("resume it with: ", 1)[1])
    assert words[0] == "gelora-train" and words[-1] == f"hydra.run.dir={tmp_path}"
    resumed = subprocess.run(
        [sys.executable, "-m", "gelora.train", *words[1:]], capture_output=True, text=True,
        timeout=600, preexec_fn=_ctrl_c_as_at_a_terminal,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["status"] == "completed" and results["resumed_from"] is not None
    assert results["metrics"]["test/accuracy"] == uninterrupted["metrics"]["test/accuracy"]


def test_a_second_ctrl_c_quits_at_once_while_the_first_one_shuts_down(tmp_path):
    # issue 44: after a first Ctrl-C Lightning ignores Ctrl-C, so a shutdown that hangs (here
    # for 120 s; a stuck worker, wandb uploading) could only be killed from another terminal
    import time

    first = (
        "+extra_callbacks.fault={_target_: tests.faults.SignalAtStep, step: 4, signal_name: SIGINT}"
    )
    hang = "+extra_callbacks.hang={_target_: tests.faults.HangingShutdown, seconds: 120}"
    started = time.perf_counter()
    quit = train(tmp_path, first, hang)
    assert quit.returncode == 130, quit.stderr[-2000:]
    assert time.perf_counter() - started < 100  # not the 120 s the shutdown hangs
    console = quit.stdout + quit.stderr
    assert "Ctrl-C again quits at once" in console  # said at the first
    assert quit.stderr.rstrip().endswith(
        f"second Ctrl-C: quit at once; {tmp_path}/results.json may not be written, and the same "
        "command resumes the run from its last checkpoint"
    )
    assert "Traceback" not in console
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()  # step 3's, which resumes it


def test_a_run_killed_after_its_last_step_records_its_best_validation_score(
    tmp_path, uninterrupted
):
    """Resumed from a last.ckpt at the final step, fit has nothing left to do and validates no
    more: the tested checkpoint's validation score must still reach the record (learning-rate
    selection reads it), equal to the uninterrupted run's."""
    every_4 = "checkpoint_every_n_steps=4"  # a periodic last.ckpt at step 20, the final step
    fault = "+extra_callbacks.fault={_target_: tests.faults.KillAtTestStart}"
    killed = train(tmp_path, every_4, fault)
    assert killed.returncode == -signal.SIGKILL
    assert torch.load(tmp_path / "checkpoints/last.ckpt", weights_only=True)["global_step"] == 20
    resumed = train(tmp_path, every_4, fault)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["resumed_from"]["optimizer_step"] == 20
    for key in ("val/accuracy_best", "test/accuracy"):
        assert results["metrics"][key] == pytest.approx(uninterrupted["metrics"][key], abs=1e-6)


def RankPlanOf(checkpoint: dict) -> dict[str, int]:
    return {a["module_name"]: a["rank"] for a in checkpoint["rank_plan"]["adapters"]}
