"""Our LoRA layer against the bare model (B = 0) and against peft's LoRA (same A and B)."""

from __future__ import annotations

import copy

import pytest
import torch
from peft import LoraConfig, get_peft_model
from torch import nn

from gelora.lora import LoRALinear, inject_lora, lora_layers, mark_trainable, set_merged
from gelora.models import find_target_modules
from gelora.ranks import UniformPolicy
from gelora.ranks.plan import AdapterSpec, RankPlan
from gelora.ranks.scaling import Scaling
from tests.tiny_models import BERT_TARGETS


def _randomise_lora(model: nn.Module, seed: int = 0) -> None:
    generator = torch.Generator().manual_seed(seed)
    for layer in lora_layers(model).values():
        for factor in (layer.lora_A, layer.lora_B):
            factor.weight.data = torch.randn(factor.weight.shape, generator=generator) * 0.1


def test_zero_b_gives_exactly_the_base_logits(tiny_bert, token_batch):
    reference = tiny_bert(**token_batch).logits
    targets = find_target_modules(tiny_bert, "bert.encoder.layer", BERT_TARGETS)
    inject_lora(tiny_bert, UniformPolicy(rank=4).plan(targets))
    for layer in lora_layers(tiny_bert).values():
        assert torch.count_nonzero(layer.lora_B.weight) == 0
        assert torch.count_nonzero(layer.lora_A.weight) > 0
    assert torch.equal(tiny_bert(**token_batch).logits, reference)


def test_matches_peft_lora_with_the_same_factors(tiny_bert, token_batch):
    rank, alpha = 4, 8.0
    base_logits = tiny_bert(**token_batch).logits
    peft_model = get_peft_model(
        copy.deepcopy(tiny_bert),
        LoraConfig(r=rank, lora_alpha=alpha, target_modules=["query", "key", "value", "dense"]),
    )
    targets = find_target_modules(tiny_bert, "bert.encoder.layer", BERT_TARGETS)
    policy = UniformPolicy(rank=rank, scaling=Scaling("constant", alpha / rank))
    inject_lora(tiny_bert, policy.plan(targets))
    _randomise_lora(tiny_bert)
    ours = lora_layers(tiny_bert)
    copied = 0
    for name, module in peft_model.named_modules():
        short = name.removeprefix("base_model.model.")
        if short in ours and hasattr(module, "lora_A"):
            module.lora_A["default"].weight.data.copy_(ours[short].lora_A.weight)
            module.lora_B["default"].weight.data.copy_(ours[short].lora_B.weight)
            copied += 1
    assert copied == len(targets) == len(ours)
    expected = peft_model(**token_batch).logits
    actual = tiny_bert(**token_batch).logits
    torch.testing.assert_close(actual, expected, atol=1e-6, rtol=1e-5)
    assert not torch.allclose(actual, base_logits, atol=1e-3)  # the adapters do act


def test_merge_and_unmerge_round_trip(tiny_bert, token_batch):
    targets = find_target_modules(tiny_bert, "bert.encoder.layer", BERT_TARGETS)
    inject_lora(tiny_bert, UniformPolicy(rank=2).plan(targets))
    _randomise_lora(tiny_bert, seed=3)
    base_weights = {n: m.base_layer.weight.clone() for n, m in lora_layers(tiny_bert).items()}
    unmerged = tiny_bert(**token_batch).logits
    set_merged(tiny_bert, True)
    assert all(layer.merged for layer in lora_layers(tiny_bert).values())
    torch.testing.assert_close(tiny_bert(**token_batch).logits, unmerged, atol=1e-5, rtol=1e-5)
    set_merged(tiny_bert, False)
    for name, layer in lora_layers(tiny_bert).items():
        torch.testing.assert_close(layer.base_layer.weight, base_weights[name], atol=1e-6, rtol=0)
    torch.testing.assert_close(tiny_bert(**token_batch).logits, unmerged, atol=1e-6, rtol=1e-6)


def test_safe_merge_refuses_non_finite_weights():
    layer = LoRALinear(nn.Linear(4, 3), rank=2, alpha=2)
    layer.lora_B.weight.data.fill_(float("inf"))
    with pytest.raises(ValueError, match="non-finite"):
        layer.merge(safe=True)
    assert not layer.merged


def test_eval_does_not_merge(tiny_bert):
    targets = find_target_modules(tiny_bert, "bert.encoder.layer", BERT_TARGETS)
    inject_lora(tiny_bert, UniformPolicy(rank=2).plan(targets))
    layers = lora_layers(tiny_bert).values()
    for layer in layers:
        torch.nn.init.normal_(layer.lora_B.weight)  # a merge would change the base weights
    before = [layer.base_layer.weight.detach().clone() for layer in layers]
    tiny_bert.eval()
    assert not any(layer.merged for layer in layers)
    with torch.no_grad():
        tiny_bert(input_ids=torch.tensor([[1, 2, 3]]))
    after = [layer.base_layer.weight for layer in layers]
    assert all(torch.equal(w, b) for w, b in zip(after, before, strict=True))
    tiny_bert.train()
    assert not any(layer.merged for layer in layers)


def test_trainable_parameters_are_the_lora_factors_and_the_head(tiny_bert):
    targets = find_target_modules(tiny_bert, "bert.encoder.layer", BERT_TARGETS)
    ranks = {0: 1, 1: 0, 2: 3}
    plan = RankPlan.from_ranks("test", targets, ranks, Scaling("constant", 2.0))
    inject_lora(tiny_bert, plan)
    mark_trainable(tiny_bert, ["classifier"])
    trainable = {n for n, p in tiny_bert.named_parameters() if p.requires_grad}
    expected = {f"{a.module_name}.lora_{f}.weight" for a in plan.adapters for f in "AB"}
    expected |= {"classifier.weight", "classifier.bias"}
    assert trainable == expected
    assert not any(".1." in n for n in lora_layers(tiny_bert))  # rank-0 block: no adapter


def test_rejects_non_linear_and_bad_rank():
    with pytest.raises(TypeError, match=r"LoRALinear wraps nn\.Linear, got Conv1d"):
        LoRALinear(nn.Conv1d(2, 2, 1), rank=1, alpha=1)
    with pytest.raises(ValueError, match="rank"):
        LoRALinear(nn.Linear(2, 2), rank=0, alpha=1)
    with pytest.raises(ValueError, match="rank >= 1"):
        AdapterSpec("x", 0, 0, 1.0, 2, 2)


QKV = [["attention.self.query", "attention.self.key", "attention.self.value"]]


def _grads(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_shared_down_projection_gives_the_same_logits_and_gradients(tiny_bert, token_batch):
    targets = find_target_modules(tiny_bert, "bert.encoder.layer", BERT_TARGETS)
    plan = UniformPolicy(rank=3).plan(targets)
    separate, shared = copy.deepcopy(tiny_bert), tiny_bert
    inject_lora(separate, plan)
    inject_lora(shared, plan, shared_inputs=QKV)
    _randomise_lora(separate, seed=5)
    _randomise_lora(shared, seed=5)
    grouped = [n for n, m in lora_layers(shared).items() if m.shared_down_projection is not None]
    assert len(grouped) == 3 * tiny_bert.config.num_hidden_layers
    for model in (separate, shared):
        mark_trainable(model, ["classifier"])
        labels = torch.arange(len(token_batch["input_ids"])) % 2
        model(**token_batch, labels=labels).loss.backward()
    torch.testing.assert_close(
        shared(**token_batch).logits, separate(**token_batch).logits, atol=1e-6, rtol=1e-5
    )
    expected, actual = _grads(separate), _grads(shared)
    assert expected.keys() == actual.keys() and len(actual) > 0
    for name in expected:
        torch.testing.assert_close(actual[name], expected[name], atol=1e-6, rtol=1e-5)


def test_shared_down_projection_recomputes_after_an_in_place_update(tiny_bert, token_batch):
    targets = find_target_modules(tiny_bert, "bert.encoder.layer", BERT_TARGETS)
    inject_lora(tiny_bert, UniformPolicy(rank=2).plan(targets), shared_inputs=QKV)
    _randomise_lora(tiny_bert, seed=1)
    query = lora_layers(tiny_bert)["bert.encoder.layer.0.attention.self.query"]
    key = lora_layers(tiny_bert)["bert.encoder.layer.0.attention.self.key"]
    x = torch.randn(2, 5, query.in_features)
    before = query(x)
    with torch.no_grad():
        query.lora_A.weight.mul_(2.0)  # an optimizer step between two calls on the same tensor
    after_key = key(x)
    after = query(x)
    for layer, output in ((key, after_key), (query, after)):
        expected = layer.base_layer(x) + x @ layer.delta_weight().T
        torch.testing.assert_close(output, expected, atol=1e-6, rtol=1e-5)
    assert not torch.allclose(before, after)


def test_shared_down_projection_is_skipped_with_dropout(tiny_bert):
    targets = find_target_modules(tiny_bert, "bert.encoder.layer", BERT_TARGETS)
    inject_lora(tiny_bert, UniformPolicy(rank=2).plan(targets), dropout=0.1, shared_inputs=QKV)
    assert all(m.shared_down_projection is None for m in lora_layers(tiny_bert).values())


def test_shared_down_projection_runs_under_inference_mode(tiny_bert, token_batch):
    targets = find_target_modules(tiny_bert, "bert.encoder.layer", BERT_TARGETS)
    plan = UniformPolicy(rank=2).plan(targets)
    separate = copy.deepcopy(tiny_bert)
    inject_lora(separate, plan)
    inject_lora(tiny_bert, plan, shared_inputs=QKV)
    _randomise_lora(separate, seed=2)
    _randomise_lora(tiny_bert, seed=2)
    with torch.inference_mode():  # as Lightning's validation and test loops
        torch.testing.assert_close(
            tiny_bert(**token_batch).logits, separate(**token_batch).logits, atol=1e-6, rtol=1e-5
        )


def test_fused_forward_and_backward_pass_gradcheck():
    from gelora.lora.layer import FusedLoRALinear

    generator = torch.Generator().manual_seed(0)

    def leaf(*shape):
        return torch.randn(*shape, generator=generator, dtype=torch.float64, requires_grad=True)

    inputs = (leaf(2, 3, 5), leaf(4, 5), leaf(4), leaf(2, 5), leaf(4, 2), 1.7)
    assert torch.autograd.gradcheck(FusedLoRALinear.apply, inputs)
    no_bias = (leaf(3, 5), leaf(4, 5), None, leaf(2, 5), leaf(4, 2), 0.5)
    assert torch.autograd.gradcheck(FusedLoRALinear.apply, no_bias)


def test_fused_and_autograd_paths_agree(token_batch, tiny_bert):
    targets = find_target_modules(tiny_bert, "bert.encoder.layer", BERT_TARGETS)
    plan = UniformPolicy(rank=3).plan(targets)
    fused, plain = tiny_bert, copy.deepcopy(tiny_bert)
    inject_lora(fused, plan)
    inject_lora(plain, plan, dropout=0.0)
    for layer in lora_layers(plain).values():
        layer._fusable = lambda x: False  # the autograd path
    _randomise_lora(fused, seed=7)
    _randomise_lora(plain, seed=7)
    labels = torch.arange(len(token_batch["input_ids"])) % 3
    for model in (fused, plain):
        mark_trainable(model, ["classifier"])
        model(**token_batch, labels=labels).loss.backward()
    expected, actual = _grads(plain), _grads(fused)
    assert expected.keys() == actual.keys()
    for name in expected:
        torch.testing.assert_close(actual[name], expected[name], atol=1e-6, rtol=1e-5)
