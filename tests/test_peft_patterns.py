"""Every rank_pattern / alpha_pattern key we write matches exactly one module by peft's own rule,
and a plan carried through peft (get_peft_model, save_pretrained, from_pretrained, merge) gives
the weights our own LoRA layers give with the same plan and factors."""

from __future__ import annotations

import copy

import pytest
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from peft.utils.other import get_pattern_key
from torch import nn
from transformers import BertConfig, BertForSequenceClassification

from gelora.errors import ConfigError
from gelora.lora import inject_lora, lora_layers, set_merged
from gelora.lora.export import peft_lora_config, save_adapter
from gelora.lora.patterns import check_on_model, check_pattern_keys, peft_matches
from gelora.models import find_target_modules
from gelora.ranks import Budget, GeLoRAPolicy
from gelora.ranks.plan import RankPlan
from tests.tiny_models import BERT_TARGETS

BLOCKS = "bert.encoder.layer"


@pytest.fixture
def twelve_blocks() -> BertForSequenceClassification:
    """A tiny BERT with 12 blocks: ``layer.1`` and ``layer.11`` both exist."""
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=100,
        hidden_size=32,
        num_hidden_layers=12,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        num_labels=2,
    )
    return BertForSequenceClassification(config).eval()


def _plan(model: nn.Module) -> RankPlan:
    """A plan whose ranks differ block by block (block 1 and block 11 differ)."""
    targets = find_target_modules(model, BLOCKS, BERT_TARGETS)
    dims = [2.0 + 1.3 * b + (3.0 if b == 1 else 0.0) for b in range(13)]
    plan = GeLoRAPolicy().plan(targets, dims, Budget(rank=3))
    assert plan.ranks[f"{BLOCKS}.1.output.dense"] != plan.ranks[f"{BLOCKS}.11.output.dense"]
    return plan


def test_each_key_matches_one_module_and_layer_1_never_catches_layer_11(twelve_blocks):
    plan = _plan(twelve_blocks)
    config = peft_lora_config(plan)
    check_on_model(config, twelve_blocks)
    assert config.rank_pattern  # heterogeneous: the patterns are used
    key = f"{BLOCKS}.1.attention.self.query"
    assert peft_matches(key, key) and not peft_matches(key, f"{BLOCKS}.11.attention.self.query")
    for name, rank in plan.ranks.items():  # peft's own resolution gives every module its rank
        assert config.rank_pattern.get(get_pattern_key(config.rank_pattern, name), config.r) == rank
    peft_model = get_peft_model(copy.deepcopy(twelve_blocks), config)
    for name, rank in plan.ranks.items():
        assert peft_model.base_model.model.get_submodule(name).r["default"] == rank


@pytest.mark.parametrize(
    ("key", "message"),
    [
        (f"{BLOCKS}.99.attention.self.query", "matches no target module"),
        ("attention.self.query", "matches 12 target modules"),  # a suffix: every block's query
        (r"layer\.1.*query", "matches 3 target modules"),  # a regex: layers 1, 10 and 11
    ],
)
def test_a_key_matching_nothing_or_several_modules_is_refused(twelve_blocks, key, message):
    config = peft_lora_config(_plan(twelve_blocks))
    config.rank_pattern = {**config.rank_pattern, key: 7}
    with pytest.raises(ConfigError, match=message) as error:
        check_on_model(config, twelve_blocks)
    assert repr(key) in str(error.value) and "\n" not in str(error.value)
    with pytest.raises(ConfigError, match="alpha_pattern key"):
        check_pattern_keys({"alpha_pattern": {key: 1.0}}, config.target_modules)


class _Nested(nn.Module):
    """``proj`` and ``inner.proj``: the full name ``proj`` also ends ``inner.proj``."""

    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(4, 4)
        self.inner = nn.Module()
        self.inner.proj = nn.Linear(4, 4)
        self.other = nn.Linear(4, 4)

    def forward(self, x):
        return self.other(self.inner.proj(self.proj(x)))


def test_a_full_name_that_is_another_modules_suffix_is_pinned_to_the_start():
    from gelora.ranks.plan import AdapterSpec

    adapters = [AdapterSpec("proj", 0, 3, 6.0, 4, 4), AdapterSpec("inner.proj", 0, 2, 4.0, 4, 4)]
    adapters.append(AdapterSpec("other", 0, 2, 4.0, 4, 4))
    config = peft_lora_config(RankPlan("test", tuple(adapters)), task_type=None)
    assert config.rank_pattern == {"^proj": 3}  # plain "proj" would catch inner.proj too
    model = _Nested()
    check_on_model(config, model)
    peft_model = get_peft_model(model, config)
    assert peft_model.base_model.model.proj.r["default"] == 3
    assert peft_model.base_model.model.inner.proj.r["default"] == 2


def _random_b(layers, seed: int = 0) -> None:
    """Train-free but non-zero adapters: B (zero at init) set to random values."""
    generator = torch.Generator().manual_seed(seed)
    for factor in layers:
        factor.weight.data = torch.randn(factor.weight.shape, generator=generator) * 0.1


def _merged_linear_weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {
        name: module.weight.detach().clone()
        for name, module in model.named_modules()
        if type(module) is nn.Linear
    }


def _ours_merged(base: nn.Module, plan: RankPlan, factors: dict) -> dict[str, torch.Tensor]:
    """Our LoRA layers with the plan and the given factors, merged into the base weights."""
    ours = copy.deepcopy(base)
    inject_lora(ours, plan)
    with torch.no_grad():
        for name, layer in lora_layers(ours).items():
            layer.lora_A.weight.copy_(factors[name][0])
            layer.lora_B.weight.copy_(factors[name][1])
    set_merged(ours, True)
    merged = {n.removesuffix(".base_layer"): w for n, w in _merged_linear_weights(ours).items()}
    return {n: w for n, w in merged.items() if ".lora_" not in n}


def _assert_same(actual: dict, expected: dict) -> None:
    assert actual.keys() == expected.keys()
    for name, weight in expected.items():
        torch.testing.assert_close(actual[name], weight, atol=1e-6, rtol=1e-5, msg=name)


def test_a_plan_round_trips_through_peft_to_the_merged_weights_of_our_layers(
    twelve_blocks, tmp_path
):
    base = twelve_blocks
    plan = _plan(base)
    config = peft_lora_config(plan, head_modules=[], task_type="SEQ_CLS")
    config.inference_mode = False
    peft_model = get_peft_model(copy.deepcopy(base), config)
    inner = peft_model.base_model.model
    _random_b([inner.get_submodule(n).lora_B["default"] for n in plan.ranks])
    factors = {
        n: (inner.get_submodule(n).lora_A["default"].weight, inner.get_submodule(n).lora_B[
            "default"].weight) for n in plan.ranks
    }  # fmt: skip
    peft_model.save_pretrained(tmp_path / "peft")
    assert LoraConfig.from_pretrained(tmp_path / "peft").rank_pattern == config.rank_pattern
    loaded = PeftModel.from_pretrained(copy.deepcopy(base), tmp_path / "peft")
    merged = _merged_linear_weights(loaded.merge_and_unload())
    expected = _ours_merged(base, plan, factors)
    _assert_same(merged, expected)
    assert any(not torch.equal(merged[n], base.get_submodule(n).weight) for n in plan.ranks)


def test_the_adapter_gelora_train_exports_merges_in_peft_to_our_merged_weights(
    twelve_blocks, tmp_path
):
    base = twelve_blocks
    plan = _plan(base)
    ours = copy.deepcopy(base)
    inject_lora(ours, plan)
    _random_b([layer.lora_B for layer in lora_layers(ours).values()], seed=1)
    factors = {n: (la.lora_A.weight, la.lora_B.weight) for n, la in lora_layers(ours).items()}
    directory = save_adapter(ours, plan, tmp_path / "adapter", head_modules=["classifier"])
    loaded = PeftModel.from_pretrained(copy.deepcopy(base), directory)
    merged = _merged_linear_weights(loaded.merge_and_unload())
    _assert_same(merged, _ours_merged(base, plan, factors))
