"""A run folder holds one run: a resume continues the very run its checkpoint was saved by, a
finished run is never rewritten, a second process is kept out, and old files are moved aside,
never deleted or picked up (``gelora.run_folder``). Issue 25's cases, each with the run it
names."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from gelora.run_folder import (
    FolderClaim,
    RunFolderError,
    check_resumed_data,
    claim_run_folder,
    folder_lock,
    read_checkpoint_state,
    run_settings,
    settings_differences,
)
from tests import helpers
from tests.helpers import TINY

B = [*TINY, "checkpoint_every_n_steps=1"]  # a last.ckpt at every step
TERM = "+extra_callbacks.fault={_target_: tests.faults.KillAtTestStart}"


def gelora_train(run_dir: Path, *overrides: str, new_process: bool = False):
    """``helpers.gelora_train``, in a process of its own where ``TERM`` may SIGKILL it."""
    return helpers.gelora_train(run_dir, *overrides, new_process=new_process or TERM in overrides)


def error_lines(proc: subprocess.CompletedProcess) -> list[str]:
    return [line for line in proc.stderr.splitlines() if "error:" in line]


def one_error(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    lines = error_lines(proc)
    assert len(lines) == 1, proc.stderr[-3000:]
    return lines[0]


@pytest.fixture(scope="module")
def killed_run(tmp_path_factory) -> Path:
    """A run killed after its last training step: checkpoints, no results.json."""
    run_dir = tmp_path_factory.mktemp("killed")
    proc = gelora_train(run_dir, *B, TERM)
    assert proc.returncode != 0
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert not (run_dir / "results.json").exists()
    return run_dir


@pytest.fixture(scope="module")
def completed_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("done")
    proc = gelora_train(run_dir, *B)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run_dir


def copy_of(run_dir: Path, tmp_path: Path, name: str = "copy") -> Path:
    target = tmp_path / name
    shutil.copytree(run_dir, target)
    return target


# --- resume only the run the checkpoint belongs to ------------------------------------------


def test_a_checkpoint_of_other_settings_is_refused_and_nothing_is_written(killed_run, tmp_path):
    """Issue 25, case 1: checkpoints copied into a folder, resumed as method=lora r=8.
    Today: exit 0, a record saying lora r=8 over GeLoRA's trained plan."""
    target = tmp_path / "b"
    shutil.copytree(killed_run / "checkpoints", target / "checkpoints")
    proc = gelora_train(
        target, *B, "trainer.max_steps=6", "method=lora", "rank_policy.rank=8", TERM
    )
    line = one_error(proc)
    assert "last.ckpt" in line and "other settings" in line and "resume=false" in line
    assert "rank_policy" in line and "trainer.max_steps: 3 -> 6" in line
    assert not (target / "results.json").exists()
    assert sorted(p.name for p in (target / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]


def test_resume_false_moves_old_checkpoints_aside_and_the_next_resume_is_clean(
    killed_run, tmp_path
):
    """Issue 25, case 1: ``resume=false`` in a used folder wrote last-v1.ckpt, and the next
    resume took the stale last.ckpt. Now the old run goes to superseded/ whole."""
    run_dir = copy_of(killed_run, tmp_path)
    old_last = (run_dir / "checkpoints" / "last.ckpt").read_bytes()
    fresh = gelora_train(run_dir, *B, "resume=false")
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    assert "moved to" in fresh.stdout
    (superseded,) = (run_dir / "superseded").iterdir()
    assert (superseded / "checkpoints" / "last.ckpt").read_bytes() == old_last
    names = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert names == ["best.ckpt", "last.ckpt"]  # no last-v1.ckpt beside a stale one
    results = json.loads((run_dir / "results.json").read_text())
    assert results["status"] == "completed" and results["resumed_from"] is None


def test_a_moved_run_folder_resumes_and_tests_its_own_checkpoints(killed_run, tmp_path):
    """Issue 25, case 2: Lightning keeps absolute checkpoint paths; a moved folder tested the
    old folder's best.ckpt (and lost val/accuracy_best) or failed once it was gone."""
    moved = copy_of(killed_run, tmp_path, "moved")
    original_best = killed_run / "checkpoints" / "best.ckpt"
    kept = original_best.read_bytes()
    original_best.unlink()  # the old folder's checkpoint is gone: only the moved one can serve
    try:
        proc = gelora_train(moved, *B, TERM)
    finally:
        original_best.write_bytes(kept)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((moved / "results.json").read_text())
    assert results["status"] == "completed"
    assert results["resumed_from"]["checkpoint"] == "checkpoints/last.ckpt"
    assert results["test_checkpoint"] == "best validation"
    assert math.isfinite(results["metrics"]["val/accuracy_best"])  # not nan
    assert str(killed_run) not in (moved / "train.log").read_text().split("run directory")[-1]


def test_changed_data_refuses_a_resume():
    claim = FolderClaim(resume_from=Path("run/checkpoints/last.ckpt"), saved_data={"train": "a"})
    check_resumed_data(claim, {"train": "a"})
    with pytest.raises(RunFolderError, match=r"the data changed .*splits train.*resume=false"):
        check_resumed_data(claim, {"train": "b"})


# --- damaged checkpoints: one line naming the file and resume=false ---------------------------


def _garbage(path: Path) -> None:
    path.write_bytes(b"\x00not a checkpoint at all" * 10)


def _truncated(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:1000])


class Payload:
    """A class instance: pickled by ``torch.save``, refused by ``weights_only``."""


def _pickled(path: Path) -> None:
    torch.save({"rank_plan": {}, "run_settings": {}, "payload": Payload()}, path)


def _foreign(path: Path) -> None:
    torch.save({"state_dict": {"w": torch.zeros(2)}, "global_step": 3}, path)


def _old_gelora(path: Path) -> None:
    saved = torch.load(path, weights_only=True)
    saved.pop("run_settings")
    torch.save(saved, path)


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (_garbage, "damaged or not a checkpoint"),
        (_truncated, "damaged or not a checkpoint"),
        (_pickled, "pickled objects"),
        (_foreign, "not a gelora checkpoint"),
        (_old_gelora, "no run settings"),
    ],
)
def test_a_damaged_checkpoint_is_one_line(killed_run, tmp_path, damage, reason):
    run_dir = copy_of(killed_run, tmp_path)
    last = run_dir / "checkpoints" / "last.ckpt"
    damage(last)
    with pytest.raises(RunFolderError) as caught:
        read_checkpoint_state(last)
    message = str(caught.value)
    assert str(last) in message and reason in message and "resume=false" in message
    assert "weights_only=False" not in message and "\n" not in message


def test_a_damaged_checkpoint_stops_the_cli_before_any_model_loads(killed_run, tmp_path):
    run_dir = copy_of(killed_run, tmp_path)
    _truncated(run_dir / "checkpoints" / "last.ckpt")
    proc = gelora_train(run_dir, *B, TERM)
    line = one_error(proc)
    assert "last.ckpt" in line and "resume=false" in line
    assert "hidden states" not in proc.stdout  # nothing was loaded
    assert not (run_dir / "results.json").exists()


# --- a completed run is not run again ----------------------------------------------------------


def test_a_completed_run_is_not_rerun_and_its_files_are_untouched(completed_run, tmp_path):
    """Issue 25, case 2: re-running a finished run rewrote its results.json (metrics lost,
    timings replaced)."""
    run_dir = copy_of(completed_run, tmp_path)
    before = {
        p: p.read_bytes()
        for p in run_dir.rglob("*")
        if p.is_file() and p.name not in ("train.log", ".lock", ".lock.holder")
    }
    proc = gelora_train(run_dir, *B)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "already holds this run, completed" in proc.stdout
    after = {
        p: p.read_bytes()
        for p in run_dir.rglob("*")
        if p.is_file() and p.name not in ("train.log", ".lock", ".lock.holder")
    }
    assert after == before  # results.json, .hydra/ and checkpoints byte for byte


def test_a_completed_run_of_other_settings_is_refused_untouched(completed_run, tmp_path):
    run_dir = copy_of(completed_run, tmp_path)
    record = (run_dir / "results.json").read_bytes()
    hydra_config = (run_dir / ".hydra" / "config.yaml").read_bytes()
    proc = gelora_train(run_dir, *B, "seed=7")
    line = one_error(proc)
    assert "completed run with other settings" in line and "seed: 0 -> 7" in line
    assert (run_dir / "results.json").read_bytes() == record
    assert (run_dir / ".hydra" / "config.yaml").read_bytes() == hydra_config


def test_rerun_true_runs_again_and_keeps_the_old_run(completed_run, tmp_path):
    run_dir = copy_of(completed_run, tmp_path)
    record = (run_dir / "results.json").read_bytes()
    # in process: what is kept is under test; the command line's refusals are the tests above
    from tests.helpers import run_in_process

    assert run_in_process(run_dir, *B, "rerun=true")["status"] == "completed"
    (superseded,) = (run_dir / "superseded").iterdir()
    assert (superseded / "results.json").read_bytes() == record
    assert json.loads((run_dir / "results.json").read_text())["status"] == "completed"


def test_the_refusals_way_out_works_rerun_true_with_other_settings(completed_run, tmp_path):
    # issue 43: the refusal above advises rerun=true, and rerun=true was refused with the same
    # line; now it runs the new settings there and keeps the old run under superseded/
    from tests.helpers import run_in_process

    run_dir = copy_of(completed_run, tmp_path)
    record = (run_dir / "results.json").read_bytes()
    new = run_in_process(run_dir, *B, "seed=7", "rerun=true")
    assert new["status"] == "completed" and new["seed"] == 7
    (superseded,) = (run_dir / "superseded").iterdir()
    assert (superseded / "results.json").read_bytes() == record


def test_a_sweep_job_of_other_settings_is_not_skipped_as_completed(completed_run, tmp_path):
    """A resumed sweep whose experiment changed: a completed job is skipped only when its
    saved settings equal the job's (the same check, through ``run``)."""
    from tests.helpers import run_in_process

    run_dir = copy_of(completed_run, tmp_path)
    record = (run_dir / "results.json").read_bytes()
    same = run_in_process(run_dir, *B)
    assert same["status"] == "completed" and json.dumps(same, sort_keys=True) == json.dumps(
        json.loads(record), sort_keys=True
    )
    with pytest.raises(RunFolderError, match="other settings"):
        run_in_process(run_dir, *B, "optimizer.lr=0.01")
    assert (run_dir / "results.json").read_bytes() == record


# --- one process per folder; folders that cannot be used ---------------------------------------


def test_a_second_process_on_one_run_folder_is_refused(tmp_path):
    with folder_lock(tmp_path):
        proc = gelora_train(tmp_path, *B, new_process=True)
    line = one_error(proc)
    assert "is in use by pid" in line
    assert not (tmp_path / "results.json").exists()


def test_the_lock_is_released_when_its_holder_dies(tmp_path):
    holder = subprocess.run(
        [
            sys.executable,
            "-c",
            "import os, sys; from pathlib import Path; from gelora.run_folder import folder_lock\n"
            "with folder_lock(Path(sys.argv[1])): os._exit(9)",
            str(tmp_path),
        ],
        timeout=60,
    )
    assert holder.returncode == 9
    with folder_lock(tmp_path):  # the kernel dropped the dead process's lock
        pass


@pytest.mark.parametrize("where", ["under_a_file", "in_proc"])
def test_an_impossible_run_folder_is_one_line(tmp_path, where):
    if where == "under_a_file":
        (tmp_path / "afile").write_text("x")
        run_dir = tmp_path / "afile" / "run"
    else:
        run_dir = Path("/proc/no-such-process/run")
    proc = gelora_train(run_dir, *B)
    line = one_error(proc)
    assert str(run_dir) in line


# --- records name no folder of the machine that made them --------------------------------------


def test_the_record_holds_paths_relative_to_its_run_folder(completed_run):
    results = json.loads((completed_run / "results.json").read_text())
    assert results["adapter_dir"] == "adapter"
    assert results["config"]["paths"]["output_dir"] == "."
    assert str(completed_run) not in (completed_run / "results.json").read_text()


def test_settings_leave_out_only_what_does_not_change_a_run():
    config = {
        "seed": 0,
        "paths": {"output_dir": "/x"},
        "trainer": {"max_steps": 3, "enable_progress_bar": False},
        "task": {"cache_tokens": True, "max_length": 32},
        "checkpoint_every_n_steps": 50,
    }
    settings = run_settings(config, "lora")
    assert settings == {
        "config": {"seed": 0, "trainer": {"max_steps": 3}, "task": {"max_length": 32}},
        "variant": "lora",
    }
    moved = run_settings(
        config | {"paths": {"output_dir": "/y"}, "checkpoint_every_n_steps": 5}, "lora"
    )
    assert settings_differences(settings, moved) == []
    other = run_settings(config | {"seed": 1}, "gelora")
    assert settings_differences(settings, other) == [
        "config.seed: 0 -> 1",
        "variant: 'lora' -> 'gelora'",
    ]


def test_the_allocator_score_cache_is_not_a_setting():
    """fisher and its shuffled control read ``rank_policy(.allocator).cache`` from
    ``estimator.cache``: switching the cache must not make a resume refuse the folder."""
    fisher = {"seed": 0, "estimator": {"cache": True}, "rank_policy": {"batches": 8, "cache": True}}
    shuffled = {"seed": 0, "rank_policy": {"seed": 0, "allocator": {"batches": 8, "cache": True}}}
    for config, uncached in (
        (fisher, {"estimator": {"cache": False}, "rank_policy": {"batches": 8, "cache": False}}),
        (shuffled, {"rank_policy": {"seed": 0, "allocator": {"batches": 8, "cache": False}}}),
    ):
        settings = run_settings(config, "fisher")
        assert settings_differences(settings, run_settings(config | uncached, "fisher")) == []
    assert run_settings(fisher, "fisher")["config"]["rank_policy"] == {"batches": 8}
    more = run_settings(fisher | {"rank_policy": {"batches": 4, "cache": True}}, "fisher")
    assert settings_differences(run_settings(fisher, "fisher"), more) == [
        "config.rank_policy.batches: 8 -> 4"
    ]


def test_claim_reads_a_record_without_settings_as_a_completed_run(tmp_path):
    (tmp_path / "results.json").write_text(
        json.dumps(
            {"status": "completed", "model": "m", "task": "t", "seed": 0, "config": {"seed": 0}}
        )
    )
    claim = claim_run_folder(tmp_path, run_settings({"seed": 0}, None), resume=True)
    assert claim.completed is not None
    with pytest.raises(RunFolderError, match="seed: 0 -> 1"):
        claim_run_folder(tmp_path, run_settings({"seed": 1}, None), resume=True)


def test_hydra_files_are_written_with_secrets_redacted(tmp_path):
    """gelora writes .hydra/ itself now, after claiming the folder: an override that is a secret
    no longer lands in clear in overrides.yaml, config.yaml or hydra.yaml."""
    proc = gelora_train(tmp_path, *B, "+wandb_api_key=hunter2-not-for-disk", "seed=3")
    assert proc.returncode == 0, proc.stderr[-3000:]
    hydra_files = {p.name: p.read_text() for p in (tmp_path / ".hydra").glob("*.yaml")}
    assert sorted(hydra_files) == ["config.yaml", "hydra.yaml", "overrides.yaml"]
    for name, text in hydra_files.items():
        assert "hunter2" not in text, name
    assert "+wandb_api_key=<redacted>" in hydra_files["overrides.yaml"]
    assert "seed=3" in hydra_files["overrides.yaml"]  # the rest as given
    # ... and Hydra's runtime paths name no folder of this machine (hydra.run.dir stays as the
    # command gave it; the sweeps under experiments/ give relative ones)
    runtime = OmegaConf.load(tmp_path / ".hydra" / "hydra.yaml").hydra.runtime
    assert runtime.output_dir == "." and runtime.cwd is None
    assert all(not str(s.path or "").startswith("/") for s in runtime.config_sources)


def test_an_allocator_that_moved_home_keeps_its_settings():
    """Issue 45 moved the gradient allocators and the shuffled control into ``gelora.ranks``: a
    record saved with the old ``_target_`` is the same run; another allocator is not."""
    old = {
        "rank_policy": {
            "_target_": "gelora.methods.shuffled.ShuffledControl",
            "seed": 0,
            "allocator": {"_target_": "gelora.methods.gradient_scores.FisherAllocator"},
        }
    }
    new = {
        "rank_policy": {
            "_target_": "gelora.ranks.ShuffledPolicy",
            "seed": 0,
            "allocator": {"_target_": "gelora.ranks.FisherAllocator"},
        }
    }
    assert settings_differences(run_settings(old, "x"), run_settings(new, "x")) == []
    other = {"rank_policy": {**new["rank_policy"], "allocator": {"_target_": "gelora.ranks.X"}}}
    assert settings_differences(run_settings(old, "x"), run_settings(other, "x")) == [
        "config.rank_policy.allocator._target_: 'gelora.ranks.FisherAllocator' -> 'gelora.ranks.X'"
    ]


def test_a_task_of_files_saved_with_the_old_loader_keeps_its_settings():
    """Issue 45 moved ``task=from_files``'s loader into ``gelora.kinds`` (its kind reads the
    files): a record saved with the old ``_target_`` is the same run."""
    loader = {"train_file": "train.csv", "problem": "classification"}
    old = {"task": {"loader": {"_target_": "gelora.data.from_files.load_from_files", **loader}}}
    new = {"task": {"loader": {"_target_": "gelora.kinds.from_files.load_from_files", **loader}}}
    assert settings_differences(run_settings(old, "x"), run_settings(new, "x")) == []
    other = {"task": {"loader": {**new["task"]["loader"], "train_file": "b.csv"}}}
    assert settings_differences(run_settings(old, "x"), run_settings(other, "x")) == [
        "config.task.loader.train_file: 'train.csv' -> 'b.csv'"
    ]
