"""What gelora-plan writes beside the peft config: the serving report (serving_report.json,
printed with --serving-report) and, with --emit, peft's method_comparison experiments (the plan
and its shuffled control) and axolotl's LoRA keys."""

from __future__ import annotations

import collections
import json
import os
import sys
from pathlib import Path

import pytest
import torch
import yaml
from peft import LoraConfig, get_peft_model

from gelora.errors import ConfigError
from gelora.models import load_classifier
from gelora.plan.emit import Emit, PlanOptions, parse_emit, shuffled_plan, write_axolotl
from gelora.plan.serving import format_serving_report, serving_report
from gelora.ranks.plan import RankPlan, TargetModule
from gelora.ranks.scaling import Scaling
from tests.helpers import TINY, compose_train, gelora_plan

# The fields of an experiment of peft's benchmark (method_comparison/MetaMathQA/experiments/lora/
# llama-3.2-3B-rank32/adapter_config.json in huggingface/peft): ours carries each of them.
PEFT_BENCH_FIELDS = (
    "alpha_pattern", "auto_mapping", "base_model_name_or_path", "bias", "corda_config",
    "eva_config", "exclude_modules", "fan_in_fan_out", "inference_mode", "init_lora_weights",
    "layer_replication", "layers_pattern", "layers_to_transform", "loftq_config", "lora_alpha",
    "lora_bias", "lora_dropout", "megatron_config", "megatron_core", "modules_to_save",
    "peft_type", "r", "rank_pattern", "revision", "target_modules", "task_type", "use_dora",
    "use_rslora",
)  # fmt: skip


def _targets(n_blocks: int = 4) -> list[TargetModule]:
    return [
        TargetModule(f"layers.{b}.{m}", b, 4, 4 if m == "q" else 8)
        for b in range(n_blocks)
        for m in ("q", "mlp")
    ]


def test_the_serving_report_pads_every_target_to_the_largest_rank():
    targets = _targets(2)  # per rank: q 8, mlp 12 -> 20 a block, 40 in all
    plan = RankPlan.from_ranks("gelora", targets, {0: 1, 1: 3}, Scaling())
    report = serving_report(plan, targets)
    assert report["plan"]["adapter_params"] == 20 * 1 + 20 * 3 == 80
    assert report["plan"]["largest_rank"] == 3
    assert report["plan"]["padded_params"] == 40 * 3  # every target at rank 3
    assert report["uniform"]["largest_rank"] == 2  # 80 parameters at one rank
    assert report["uniform"]["adapter_params"] == report["uniform"]["padded_params"] == 80
    assert report["padded_ratio"] == pytest.approx(1.5) and report["params_ratio"] == 1.0
    assert report["plan"]["vllm_max_lora_rank"] == report["uniform"]["vllm_max_lora_rank"] == 8
    assert report["vllm_padded_ratio"] == 1.0
    text = format_serving_report(report)
    assert "padded params" in text and "padded 1.50" in text
    json.dumps(report)  # serving_report.json holds it as is


def test_the_shuffled_control_permutes_whole_blocks_by_seed():
    targets = _targets(4)
    plan = RankPlan.from_ranks("gelora", targets, {0: 1, 1: 2, 2: 5, 3: 3}, Scaling())
    control = shuffled_plan(plan, targets, seed=0)
    assert control == shuffled_plan(plan, targets, seed=0)
    assert control.trainable_adapter_params == plan.trainable_adapter_params
    assert sorted(control.block_ranks(4)) == sorted(plan.block_ranks(4))
    assert control.block_ranks(4) != plan.block_ranks(4)
    assert all(a.scaling == 2.0 for a in control.adapters)  # alphas move with their ranks


def _plan_with_emits(tmp_path: Path, *overrides: str):
    from gelora.plan.lora_config import plan_from_config

    emits = (Emit("peft-bench", tmp_path / "bench"), Emit("axolotl", tmp_path / "ax.yaml"))
    cfg = compose_train(*TINY, "budget.rank=2", *overrides, f"paths.output_dir={tmp_path}")
    return plan_from_config(cfg, tmp_path / "plan", PlanOptions(True, emits))


def test_gelora_plan_writes_the_report_and_peft_bench_experiments(tmp_path):
    run = _plan_with_emits(tmp_path)
    saved = json.loads((tmp_path / "plan" / "serving_report.json").read_text())
    assert saved == run.serving_report and saved["plan"]["adapter_params"] == (
        run.plan.plan.trainable_adapter_params
    )
    experiments = sorted((tmp_path / "bench" / "experiments" / "lora").iterdir())
    assert [e.name for e in experiments] == [  # the task in the name: no two tasks collide
        "tiny_bert-rotten_tomatoes-gelora-rank2",
        "tiny_bert-rotten_tomatoes-gelora-rank2-shuffled-seed0",
    ]
    counts = []
    for folder in experiments:
        # the benchmark's validate_experiment_path: experiments/<peft-method>/<experiment-name>
        assert folder.relative_to(tmp_path / "bench").parts[:2] == ("experiments", "lora")
        assert [f.name for f in folder.iterdir()] == ["adapter_config.json"]  # random weights
        stored = json.loads((folder / "adapter_config.json").read_text())
        assert set(PEFT_BENCH_FIELDS) <= set(stored)
        assert stored["inference_mode"] is False and stored["base_model_name_or_path"] is None
        config = LoraConfig.from_pretrained(folder)
        torch.manual_seed(0)
        model = get_peft_model(load_classifier(_tiny_spec())[0], config)
        counts.append(sum(p.numel() for n, p in model.named_parameters() if ".lora_" in n))
        ranks = collections.Counter(
            config.rank_pattern.get(t, config.r) for t in config.target_modules
        )
        assert ranks == collections.Counter(run.plan.plan.ranks.values())
    assert counts == [run.plan.plan.trainable_adapter_params] * 2


def _tiny_spec():
    from gelora.models import ModelSpec

    model_cfg = compose_train("model=tiny_bert").model
    return ModelSpec.from_config(dict(model_cfg), num_labels=2)


def test_the_axolotl_snippet_parses_and_carries_the_plans_patterns(tmp_path):
    run = _plan_with_emits(tmp_path)
    text = (tmp_path / "ax.yaml").read_text()
    assert "axolotl 0.18.0" in text.splitlines()[1]  # which axolotl the keys follow
    keys = yaml.safe_load(text)
    config = LoraConfig.from_pretrained(run.lora_config_dir)
    assert keys["adapter"] == "lora" and keys["lora_r"] == config.r
    assert keys["lora_alpha"] == config.lora_alpha
    assert set(keys["lora_target_modules"]) == set(config.target_modules)
    assert keys["lora_rank_pattern"] == config.rank_pattern
    assert keys["lora_alpha_pattern"] == config.alpha_pattern
    for name, rank in run.plan.plan.ranks.items():
        assert keys["lora_rank_pattern"].get(name, keys["lora_r"]) == rank
    assert all(isinstance(v, int) for v in keys["lora_alpha_pattern"].values())


def test_axolotl_refuses_an_alpha_that_is_not_a_whole_number(tmp_path):
    from gelora.lora.export import peft_lora_config

    targets = _targets(2)
    plan = RankPlan.from_ranks("gelora", targets, {0: 2, 1: 3}, Scaling("rslora", 2.0))
    with pytest.raises(ConfigError, match="axolotl holds lora_alpha"):
        write_axolotl(peft_lora_config(plan), tmp_path, model="m")


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--emit"], "--emit takes one of peft-bench, axolotl"),
        (["--emit", "onnx", "out"], "got 'onnx'"),
        (["--emit", "peft-bench"], "needs a destination folder, got None"),
        (["--emit", "axolotl", "budget.rank=2"], "got 'budget.rank=2'"),
        (["--emit", "peft-bench", "x.yaml"], "writes a folder of experiments"),
        (["--serving-report", "--compare", "seed"], "not to --compare"),
    ],
)
def test_a_bad_flag_is_refused_in_one_line_before_anything_loads(
    arguments, message, monkeypatch, capsys
):
    import gelora.plan.cli as cli

    monkeypatch.setattr(sys, "argv", ["gelora-plan", *TINY, *arguments])
    monkeypatch.setattr(cli, "plan_app", lambda request: pytest.fail("the app ran"))
    with pytest.raises(SystemExit) as exit_:
        cli.main()
    assert exit_.value.code == 2
    error = capsys.readouterr().err
    assert error.startswith("gelora-plan: error: ") and message in error
    assert error.count("\n") == 1


def test_the_flags_leave_argv_to_hydra():
    from gelora.plan.cli import take_plan_options

    rest, options = take_plan_options(
        ["a=1", "--serving-report", "--emit", "axolotl", "out.yaml", "--emit=peft-bench", "d"]
    )
    assert rest == ["a=1"] and options.serving_report
    here = Path.cwd()
    assert options.emits == (Emit("axolotl", here / "out.yaml"), Emit("peft-bench", here / "d"))
    assert parse_emit("axolotl", "folder") == Emit("axolotl", here / "folder")


def test_gelora_plan_prints_the_serving_report_on_the_command_line(tmp_path):
    run = gelora_plan(
        f"hydra.run.dir={tmp_path}", *TINY, "--serving-report",
        "--emit", "axolotl", str(tmp_path / "axolotl"),
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Serving report" in run.stdout and "padded params" in run.stdout
    assert (tmp_path / "serving_report.json").is_file()
    assert yaml.safe_load((tmp_path / "axolotl" / "gelora_lora.yaml").read_text())["lora_r"]


# --- nothing the user wrote is replaced (issue 43) ---------------------------------------------


def test_axolotl_merges_into_the_users_config_and_keeps_it_as_it_was(tmp_path):
    config = tmp_path / "ax.yaml"
    users = "# my run\nbase_model: some/model\ndatasets:\n  - path: data.jsonl\nlora_r: 16\n"
    config.write_text(users)
    run = _plan_with_emits(tmp_path)
    merged = yaml.safe_load(config.read_text())
    assert merged["base_model"] == "some/model" and merged["datasets"] == [{"path": "data.jsonl"}]
    assert merged["lora_r"] == LoraConfig.from_pretrained(run.lora_config_dir).r  # ours, set
    assert list(merged)[:3] == ["base_model", "datasets", "lora_r"]  # the user's order kept
    assert (tmp_path / "ax.yaml.before-gelora").read_text() == users  # comments and all
    _plan_with_emits(tmp_path)  # again: a second backup, the first untouched
    assert (tmp_path / "ax.yaml.before-gelora").read_text() == users
    assert (tmp_path / "ax.yaml.before-gelora-2").is_file()


def test_emits_that_cannot_merge_or_write_are_refused_before_any_model_loads(tmp_path):
    listed = tmp_path / "list.yaml"
    listed.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="holds a list, not a mapping of axolotl keys"):
        parse_emit("axolotl", str(listed))
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if not os.access(locked, os.W_OK):  # root writes anywhere: nothing to refuse there
            with pytest.raises(ConfigError, match="is not writable"):
                parse_emit("peft-bench", str(locked / "bench"))
    finally:
        locked.chmod(0o700)


def test_peft_bench_refuses_to_replace_an_edited_experiment_and_keeps_an_identical_one(tmp_path):
    _plan_with_emits(tmp_path)
    folder = tmp_path / "bench" / "experiments" / "lora" / "tiny_bert-rotten_tomatoes-gelora-rank2"
    config = (folder / "adapter_config.json").read_bytes()
    _plan_with_emits(tmp_path)  # the same plan again: nothing to replace, nothing refused
    assert (folder / "adapter_config.json").read_bytes() == config
    (folder / "NOTES.md").write_text("mine")
    with pytest.raises(ConfigError, match="exists and holds other files or another plan"):
        _plan_with_emits(tmp_path)
    assert (folder / "NOTES.md").read_text() == "mine"
    assert (folder / "adapter_config.json").read_bytes() == config


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_the_emitted_shuffle_is_the_one_training_draws(seed):
    from gelora.ranks.controls import shuffle_blocks

    targets = _targets(4)
    plan = RankPlan.from_ranks("gelora", targets, {0: 1, 1: 2, 2: 5, 3: 3}, Scaling())
    emitted = shuffled_plan(plan, targets, seed=seed)
    trained = shuffle_blocks(plan, targets, seed, "shuffled", Scaling(), source="gelora")
    assert emitted.ranks == trained.ranks
    assert emitted.block_ranks(4) != plan.block_ranks(4)
