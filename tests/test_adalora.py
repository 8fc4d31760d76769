"""AdaLoRA through peft: budget, schedule, and one allocation per real optimizer step."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

from gelora.errors import ConfigError
from gelora.methods import AdaptSettings
from gelora.methods.adalora import (
    AdaLoRA,
    AdaLoRAAllocation,
    adalora_layers,
    effective_adapter_params,
    effective_ranks,
    weight_ranks,
)
from gelora.models import find_target_modules
from gelora.ranks import Budget
from gelora.training.module import LoRAClassifierModule
from tests.tiny_models import BERT_TARGETS


def _batches(n: int, batch_size: int = 4) -> DataLoader:
    generator = torch.Generator().manual_seed(0)
    rows = [
        {
            "input_ids": torch.randint(1, 100, (10,), generator=generator),
            "attention_mask": torch.ones(10, dtype=torch.long),
            "labels": torch.tensor(i % 3),
        }
        for i in range(n)
    ]
    return DataLoader(rows, batch_size=batch_size)


def test_final_budget_is_ours_and_init_r_is_one_and_a_half_times_it(tiny_bert):
    targets = find_target_modules(tiny_bert, "bert.encoder.layer", BERT_TARGETS)
    policy = AdaLoRA()
    plan = policy.plan(targets, None, Budget(rank=2))
    assert set(plan.ranks.values()) == {2}
    assert plan.trainable_adapter_params == Budget(rank=2).n_params(targets)
    assert policy.init_r(2) == 3 and policy.init_r(8) == 12


def test_schedule_takes_shares_or_steps_and_refuses_an_empty_pruning_phase():
    assert AdaLoRA(tinit=0.1, tfinal=0.2).schedule(100) == {
        "total_step": 100,
        "tinit": 10,
        "tfinal": 20,
    }
    assert AdaLoRA(tinit=5, tfinal=7).schedule(100)["tinit"] == 5
    with pytest.raises(ConfigError, match="AdaLoRA needs steps to prune in"):
        AdaLoRA(tinit=60, tfinal=40).schedule(100)


def test_allocation_runs_once_per_optimizer_step_not_per_micro_batch(tiny_bert, monkeypatch):
    targets = find_target_modules(tiny_bert, "bert.encoder.layer", BERT_TARGETS)
    policy = AdaLoRA(tinit=1, tfinal=2, deltaT=1)
    plan = policy.plan(targets, None, Budget(rank=2))
    model = policy.adapt(tiny_bert, plan, AdaptSettings(head_modules=("classifier",)))
    initial = effective_adapter_params(model)
    assert sum(effective_ranks(model).values()) == 3 * len(targets)  # init_r everywhere
    calls: list[int] = []
    adalora = model.base_model
    original = adalora.update_and_allocate
    monkeypatch.setattr(
        adalora, "update_and_allocate", lambda step: (calls.append(step), original(step))
    )
    module = LoRAClassifierModule(model, rank_plan=plan, num_labels=3, lr=1e-2)
    allocation = AdaLoRAAllocation(policy, log_every_n_steps=1)
    trainer = L.Trainer(
        max_epochs=1,
        accumulate_grad_batches=2,
        callbacks=[allocation],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, train_dataloaders=_batches(48))  # 12 micro-batches, 6 steps
    assert trainer.global_step == 6
    assert calls == [0, 1, 2, 3, 4, 5]
    assert allocation.schedule == {"total_step": 6, "tinit": 1, "tfinal": 2}
    # After the final phase the budget is AdaLoRA's target: target_r x number of matrices.
    assert sum(effective_ranks(model).values()) == 2 * len(targets)
    assert effective_adapter_params(model) < initial
    assert allocation.budget_history[0] == (0, 3 * len(targets))
    assert allocation.budget_history[-1] == (6, 2 * len(targets))
    # The weights hold the pruning: zeroed singular values; a checkpoint saved before the last
    # pruning would hold more (what gelora-table counts: the tested weights, not the masks).
    assert weight_ranks(model) == effective_ranks(model)
    first = next(iter(adalora_layers(model.base_model.model).values()))
    kept = int(torch.count_nonzero(first.lora_E["default"]))
    with torch.no_grad():  # as if the tested checkpoint were from before a pruning step
        first.lora_E["default"].fill_(0.5)
    ranks = weight_ranks(model)
    assert sum(ranks.values()) == 2 * len(targets) + (3 - kept)
    in_out = first.get_base_layer().in_features + first.get_base_layer().out_features + 1
    tested = effective_adapter_params(model, ranks)
    assert tested == effective_adapter_params(model) + (3 - kept) * in_out


def test_orthogonal_regulariser_is_added_when_labels_are_passed(tiny_bert, token_batch):
    targets = find_target_modules(tiny_bert, "bert.encoder.layer", BERT_TARGETS)
    policy = AdaLoRA(orth_reg_weight=10.0)
    model = policy.adapt(tiny_bert, policy.plan(targets, None, Budget(rank=2)), AdaptSettings(()))
    labels = torch.arange(len(token_batch["input_ids"])) % 3
    with torch.no_grad():
        logits = model(**token_batch).logits
        with_labels = model(**token_batch, labels=labels).loss
    plain = torch.nn.functional.cross_entropy(logits, labels)
    assert with_labels > plain + 1e-3  # the regulariser (random P, Q are not orthogonal) is on
