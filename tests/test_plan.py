"""gelora-plan and lora_config_for: GeLoRA's plan as a peft LoraConfig that peft accepts as is,
with exactly the planned parameters, the ranks gelora-train trains, and training in plain peft."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from gelora.models import ModelSpec, load_classifier
from tests.helpers import TINY, compose_train, gelora_plan, run_in_process

TINY_SPEC = ModelSpec(  # conf/model/tiny_bert.yaml
    asset="all-minilm-l6-v2",
    pretrained=None,
    num_labels=2,
    random_init=dict(
        num_hidden_layers=2, hidden_size=32, intermediate_size=64, num_attention_heads=2
    ),
)
WORDS = ("long", "short", "odd", "warm", "cold")
VERDICTS = ("fine", "dull", "superb", "bad", "good", "slow")
TEXTS = [f"the {w} film number {i} was {v}" for i, (w, v) in enumerate(
    (w, v) for w in WORDS for v in VERDICTS)]  # fmt: skip


def lora_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for n, p in model.named_parameters() if ".lora_" in n)


@pytest.mark.parametrize("budget", ["budget.rank=2", "budget.rank=null"])
def test_plan_config_loads_in_peft_with_the_planned_count_and_train_uses_the_same_ranks(
    tmp_path, budget
):
    from peft import LoraConfig, get_peft_model

    from gelora.plan.lora_config import plan_from_config

    overrides = [*TINY, "estimator.n_resamples=2", budget]
    run = plan_from_config(compose_train(*overrides, f"paths.output_dir={tmp_path}"), tmp_path)
    config = LoraConfig.from_pretrained(run.lora_config_dir)
    torch.manual_seed(0)
    model = get_peft_model(load_classifier(TINY_SPEC)[0], config)
    assert lora_parameters(model) == run.plan.plan.trainable_adapter_params
    assert not config.inference_mode
    for name in ("id_profile.png", "rank_plan.png", "rank_plan.json"):
        assert (tmp_path / name).is_file()
    stored = json.loads((run.lora_config_dir / "adapter_config.json").read_text())
    assert stored["base_model_name_or_path"] is None  # tiny_bert's weights are random
    trained = run_in_process(tmp_path / "train", *overrides)
    assert trained["ranks"] == run.plan.plan.ranks
    assert trained["id_profile_cache"]["outcome"] == "reused"  # the plan's own profile


def test_lora_config_for_trains_in_plain_peft():
    from peft import get_peft_model
    from transformers import AutoTokenizer

    from gelora.assets import asset_path
    from gelora.models import find_target_modules
    from gelora.plan import lora_config_for
    from gelora.ranks import Budget
    from gelora.stages.profile import EstimatorSettings

    torch.manual_seed(0)
    model, _ = load_classifier(TINY_SPEC)
    tokenizer = AutoTokenizer.from_pretrained(asset_path("all-minilm-l6-v2"))
    config = lora_config_for(
        model, tokenizer, TEXTS, budget=2, head_modules=["classifier"], n_samples=24,
        settings=EstimatorSettings(n_resamples=0),
    )  # fmt: skip
    assert len(config.target_modules) == 2 * 6  # every linear map of both blocks, by full name
    assert "bert.encoder.layer.1.attention.self.query" in config.target_modules
    relative = [t.split(".layer.0.")[-1] for t in config.target_modules if ".layer.0." in t]
    targets = find_target_modules(model, "bert.encoder.layer", relative)
    peft_model = get_peft_model(model, config)
    assert lora_parameters(peft_model) == Budget(rank=2).n_params(targets)
    batch = tokenizer(TEXTS[:8], padding=True, return_tensors="pt")
    labels = torch.tensor([0, 1] * 4)
    trainable = [p for p in peft_model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-2)
    losses = []
    for _ in range(15):
        loss = peft_model(**batch, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    lora_b = [p for n, p in peft_model.named_parameters() if "lora_B" in n]
    assert any(p.abs().sum() > 0 for p in lora_b)  # the adapters themselves trained


def test_gelora_plan_on_the_command_line(tmp_path):
    run = gelora_plan(f"hydra.run.dir={tmp_path}", *TINY)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Rank plan (gelora)" in run.stdout and "LoRA config for peft" in run.stdout
    assert (tmp_path / "lora_config" / "adapter_config.json").is_file()
    refused = gelora_plan(f"hydra.run.dir={tmp_path / 'adalora'}", *TINY, "method=adalora")
    assert refused.returncode == 2
    assert "gelora-plan: error: method=adalora is not a plan a LoraConfig holds" in refused.stderr
    # issue 43: head_only with --serving-report was a traceback ("no adapters to export")
    head = gelora_plan(f"hydra.run.dir={tmp_path / 'head'}", *TINY, "method=head_only",
                       "--serving-report")  # fmt: skip
    assert head.returncode == 2 and "Traceback" not in head.stderr
    assert "gelora-plan: error: method=head_only trains no adapters" in head.stderr
    assert "hidden states" not in head.stderr  # refused before the ID profile


def test_gelora_plan_composes_with_cfg_job_after_its_overrides(tmp_path):
    # gelora-plan adds its run folder to the command line; appended after `--cfg job`, argparse
    # refused it ("unrecognized arguments"), so `gelora-plan budget.rank=2 --cfg job` failed.
    done = subprocess.run(
        [sys.executable, "-c", "from gelora.plan.cli import main; main()", "budget.rank=2",
         "--cfg", "job"],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-500:]
    assert "rank_policy:" in done.stdout and "rank: 2" in done.stdout
