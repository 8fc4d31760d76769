"""The real app, run as a user runs it: the packaged model on a few hundred real examples."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import torch

from tests.helpers import SMOKE, assert_not_successful, gelora_train, run_in_process


@pytest.fixture(scope="module")
def gelora_run(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    run_dir = tmp_path_factory.mktemp("gelora")
    # a process of its own, as a user's: wandb's run, and the console's chatter checked absent
    # (a test worker may have shown libraries' once-per-process warnings already)
    return run_dir, gelora_train(run_dir, *SMOKE, "logger=wandb", new_process=True)


def test_gelora_run_prints_the_profile_plan_and_score(gelora_run):
    _, proc = gelora_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Intrinsic dimension per hidden-state layer" in proc.stdout
    assert "Rank plan (gelora)" in proc.stdout
    assert "trainable:" in proc.stdout and "LoRA adapters" in proc.stdout
    assert "test/accuracy = " in proc.stdout
    run_dir = gelora_run[0]
    assert f"run directory: {run_dir}" in proc.stdout
    assert f"results: {run_dir / 'results.json'}" in proc.stdout
    assert "multiple `ModelCheckpoint` callbacks" not in proc.stdout + proc.stderr
    log_file = (run_dir / "train.log").read_text()  # the console's lines, with times and levels
    for line in (
        "Rank plan (gelora)",
        "Intrinsic dimension per hidden-state layer",
        "test/accuracy = ",
    ):
        assert line in log_file
    assert proc.stdout.splitlines()[-1] == f"results: {run_dir / 'results.json'}"


def test_the_console_says_what_matters_and_the_log_file_keeps_the_rest(gelora_run):
    run_dir, proc = gelora_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    console = proc.stdout + proc.stderr
    assert "new head: classifier.weight, classifier.bias\n" in proc.stdout
    for chatter in ("LOAD REPORT", "Loading weights", "wandb:", "anonymous", "Tip:",
                    "GPU available", "Total FLOPs", "stepping batches", "LeafSpec"):  # fmt: skip
        assert chatter not in console, chatter
    log_file = (run_dir / "train.log").read_text()
    assert "][DEBUG] - BertForSequenceClassification LOAD REPORT" in log_file
    assert "][DEBUG] - model summary:" in log_file
    assert "][DEBUG] - wandb run written to " in log_file and "wandb sync " in log_file


def test_wandbs_staged_files_stay_in_the_run_folder(gelora_run):
    # issue 43: wandb staged the logged tables' and images' files under the user's home
    # (~/.local/share/wandb/artifacts/staging), two a run, never removed
    run_dir, proc = gelora_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    staged = [p for p in (run_dir / "wandb" / "data").rglob("*") if p.is_file()]
    assert staged, "nothing staged in the run folder"


def test_the_two_figures_have_the_same_size(gelora_run):
    from matplotlib.image import imread

    run_dir, _ = gelora_run
    profile, plan = (imread(run_dir / f"{n}.png").shape for n in ("id_profile", "rank_plan"))
    assert profile == plan


def test_gelora_run_writes_complete_results(gelora_run):
    run_dir, proc = gelora_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((run_dir / "results.json").read_text())
    assert results["status"] == "completed"
    assert results["method"] == "gelora" and results["model"] == "minilm_l6"
    assert results["task"] == "rotten_tomatoes" and results["seed"] == 0
    assert len(results["intrinsic_dims"]) == 7  # embeddings + 6 blocks
    assert len(results["ranks"]) == 6 * 6
    per_block = [results["ranks"][f"bert.encoder.layer.{b}.attention.self.query"] for b in range(6)]
    assert results["block_ranks"] == per_block
    # 384 -> 384 maps (4 per block) cost 768 r; the two FFN maps 384 <-> 1536 cost 1920 r each.
    assert results["trainable_adapter_params"] == sum(r * (4 * 768 + 2 * 1920) for r in per_block)
    head = (384 * 384 + 384) + (384 * 2 + 2)  # pooler and classifier
    assert results["trainable_params"] == results["trainable_adapter_params"] + head
    assert 0.0 <= results["metrics"]["test/accuracy"] <= 1.0
    assert "val/accuracy_best" in results["metrics"]
    assert results["metric"] == "accuracy" and results["pooling"] == "mean"
    assert set(results["timings"]) >= {"id_estimation_s", "fit_s", "total_s"}
    assert results["config"]["estimator"]["n_samples"] == 200
    assert results["optimizer_steps"] == 8
    assert results["scaling"] == {"rule": "constant", "scale": 2.0, "text": "alpha/r = 2"}
    assert all(alpha / results["ranks"][m] == 2.0 for m, alpha in results["alphas"].items())
    assert results["learning_rate"] == 1e-3
    test_rows = results["eval_rows"]["test"]
    assert test_rows["rows"] == results["task_sizes"]["test"] and len(test_rows["sha256"]) == 64
    for figure in ("id_profile.png", "rank_plan.png"):
        assert (run_dir / figure).stat().st_size > 10_000


def test_wandb_leaves_a_syncable_offline_run(gelora_run):
    run_dir, proc = gelora_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    offline_runs = list((run_dir / "wandb").glob("offline-run-*"))
    assert len(offline_runs) == 1
    assert list(offline_runs[0].glob("*.wandb"))
    media = offline_runs[0] / "files" / "media"
    assert len(list(media.glob("table/rank_plan_*.table.json"))) == 1  # the plan as a table
    assert len(list(media.glob("images/plots_*.png"))) == 2  # ID profile and rank plan


def test_exported_adapter_loads_in_peft_with_our_logits(gelora_run):
    """The run's adapter/ through peft equals our model rebuilt from its plan and checkpoint."""
    from peft import PeftModel

    from gelora.lora import inject_lora, mark_trainable
    from gelora.models import ModelSpec, load_classifier
    from gelora.ranks.plan import RankPlan

    run_dir, proc = gelora_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((run_dir / "results.json").read_text())
    config = json.loads((run_dir / "adapter" / "adapter_config.json").read_text())
    for module, rank in results["ranks"].items():
        assert config["rank_pattern"].get(module, config["r"]) == rank
    spec = ModelSpec(asset="all-minilm-l6-v2", pretrained=None, num_labels=2)
    head = ["bert.pooler", "classifier"]
    ours, tokenizer = load_classifier(spec, head_modules=head)
    base, _ = load_classifier(spec, head_modules=head)
    inject_lora(ours, RankPlan.from_dict(json.loads((run_dir / "rank_plan.json").read_text())))
    mark_trainable(ours, head)
    checkpoint = torch.load(run_dir / "checkpoints" / "best.ckpt", weights_only=True)
    state = {k.removeprefix("model."): v for k, v in checkpoint["state_dict"].items()}
    missing, unexpected = ours.load_state_dict(state, strict=False)
    assert not unexpected and all(".lora_" not in k for k in missing)
    loaded = PeftModel.from_pretrained(base, run_dir / "adapter").eval()
    batch = tokenizer(
        ["a warm, funny film", "dull and far too long"], return_tensors="pt", padding=True
    )
    with torch.no_grad():
        difference = (loaded(**batch).logits - ours.eval()(**batch).logits).abs().max().item()
    assert difference < 1e-5


# The other methods' runs are composed and run in process (no interpreter start-up): their records
# are under test; the command line itself is gelora_run's above.


def test_uniform_lora_runs_the_same_way(tmp_path):
    returned = run_in_process(tmp_path, *SMOKE, "method=lora", "rank_policy.rank=2", "logger=csv")
    results = json.loads((tmp_path / "results.json").read_text())
    assert returned["status"] == "completed"
    assert results["method"] == "lora" and set(results["ranks"].values()) == {2}
    assert results["trainable_adapter_params"] == 6 * 2 * (4 * 768 + 2 * 1920)
    assert list((tmp_path / "csv").rglob("metrics.csv"))


def test_adalora_runs_at_the_budget_and_reports_both_counts(tmp_path):
    returned = run_in_process(
        tmp_path,
        *SMOKE,
        "method=adalora",
        "budget.rank=2",
        "trainer.max_steps=12",
        "logger=none",
    )
    results = json.loads((tmp_path / "results.json").read_text())
    assert returned["status"] == "completed"
    assert results["method"] == "adalora" and results["budget_params"] == 82_944
    assert results["planned_adapter_params"] == 82_944  # final budget: target_r = 2 everywhere
    adalora = results["method_summary"]
    assert adalora["schedule"] == {"total_step": 12, "tinit": 1, "tfinal": 2}
    # init_r = 3: A, B and the singular values E, 3 (in + out + 1) per matrix
    assert adalora["initial_adapter_params"] == 3 * (6 * (4 * 769 + 2 * 1921))
    assert sum(adalora["final_ranks"].values()) == 2 * 36
    assert adalora["rank_budget_history"][-1] == [12, 72]
    config = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert config["peft_type"] == "ADALORA"


def test_eva_spends_the_budget_in_parameters(tmp_path):
    returned = run_in_process(tmp_path, *SMOKE, "method=eva", "budget.rank=2", "logger=none")
    results = json.loads((tmp_path / "results.json").read_text())
    assert returned["status"] == "completed"
    assert results["method"] == "eva" and "activation_svd_s" in results["timings"]
    # peft shares 2 x 36 rank units; trailing components are then dropped until the plan fits
    # the budget in parameters, landing under it by less than one unit of the widest map
    assert sum(results["ranks"].values()) <= 2 * 36
    assert 82_944 - (384 + 1536) < results["trainable_adapter_params"] <= 82_944
    assert max(results["ranks"].values()) <= 4  # rho = 2
    assert len(set(results["ranks"].values())) > 1  # redistributed by explained variance


# Each error path on the command line (``gelora-train`` in process: no interpreter start), with
# the one line it must say.
@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["model=no_such_model"], "Could not find 'model/no_such_model'"),
        (["task=no_such_task"], "Could not find 'task/no_such_task'"),
        (["rank_policy.offset=-1"], "gelora-train: error: rank_policy.offset must be >= 0, got -1"),
        (["estimator.n_samples=2"], "estimator.n_samples must be an integer >= 3 or all, got 2"),
        (["estimator.pooling=max"], "estimator.pooling must be one of mean, cls, last, token"),
    ],
)
def test_bad_input_gets_a_clear_error_and_no_success(tmp_path, overrides, message):
    proc = gelora_train(tmp_path, "logger=none", *overrides)
    assert proc.returncode != 0
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert_not_successful(tmp_path)


def test_off_a_terminal_a_run_prints_progress_and_validation_lines(tmp_path):
    # issue 44: with output to a file (nohup, SLURM), the fit printed nothing for its whole
    # length, and train.log had no validation lines
    from tests.helpers import TINY, gelora_train

    ran = gelora_train(tmp_path, *TINY, "progress_every_n_steps=1", "logger=none")
    assert ran.returncode == 0, ran.stderr[-3000:]
    console = ran.stdout + ran.stderr
    for where in (console, (tmp_path / "train.log").read_text()):
        steps = [line for line in where.splitlines() if "train: step " in line]
        assert [s.split("train: step ")[1].split(",")[0] for s in steps] == ["1/3", "2/3", "3/3"]
        assert all("loss " in s and "lr " in s and "samples/s" in s for s in steps)
        assert "time left (at the cap)" in steps[0]
        assert sum("validation at step " in line and "val/accuracy" in line
                   for line in where.splitlines()) == 3  # fmt: skip


def test_a_run_records_what_it_cost(tmp_path):
    # issue 44: results.json had times but no peak memory and no throughput
    import json

    from gelora.table.sweep_runs import load_runs
    from tests.helpers import TINY, gelora_train

    ran = gelora_train(tmp_path, *TINY, "logger=none")
    assert ran.returncode == 0, ran.stderr[-3000:]
    cost = json.loads((tmp_path / "results.json").read_text())["cost"]
    assert cost["peak_rss_mb"] > 100  # torch and a model: far above 100 MB
    assert cost["train_samples"] == 3 * 16  # debug=tiny: 3 steps of 16
    assert 16 <= cost["train_tokens"] <= 3 * 16 * 32  # non-padding tokens of 32-token rows
    assert cost["samples_per_s"] == pytest.approx(cost["train_samples"] / cost["train_s"], 0.01)
    assert cost["cuda_peak_allocated_mb"] is None  # CPU
    (run,) = load_runs(tmp_path)
    assert run.peak_rss_mb == cost["peak_rss_mb"] and run.tokens_per_s == cost["tokens_per_s"]


def test_a_progress_line_of_an_epoch_capped_run_counts_to_lightnings_estimate():
    from types import SimpleNamespace

    from gelora.training.loggers import ProgressLines

    progress = ProgressLines(every_n_steps=50, enabled=True)
    trainer = SimpleNamespace(max_steps=-1, estimated_stepping_batches=600, optimizers=[])
    line = progress.step_line(trainer, {"loss": 0.5}, 150)
    assert line.startswith("train: step 150/600, loss 0.5000, ")
    assert "time left (at the cap) " in line
