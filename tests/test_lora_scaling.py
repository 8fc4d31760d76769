"""One scaling rule per run: every method, peft's included, scales updates by ``lora.scaling``."""

from __future__ import annotations

import copy
import math

import pytest
from peft import LoraConfig, get_peft_model

from gelora.errors import ConfigError
from gelora.lora import inject_lora, lora_layers
from gelora.methods import AdaptSettings
from gelora.methods.adalora import AdaLoRA
from gelora.models import find_target_modules
from gelora.ranks import Budget, Scaling, UniformPolicy
from gelora.stages.plan import load_method, load_scaling
from tests.helpers import compose_train
from tests.tiny_models import BERT_TARGETS

DIMS = [10.0, 30.0, 12.0, 40.0]  # an ID profile for tiny_bert's 3 blocks


def test_constant_rule_holds_alpha_over_r_and_rslora_alpha_over_sqrt_r():
    constant, rslora = Scaling("constant", 2.0), Scaling("rslora", 8.0)
    for rank in (1, 2, 4, 9):
        assert constant.alpha(rank) / rank == 2.0
        assert rslora.alpha(rank) / math.sqrt(rank) == pytest.approx(8.0)
        assert rslora.factor(rank) == pytest.approx(8.0 / math.sqrt(rank))
    assert constant.text == "alpha/r = 2" and "sqrt" in rslora.text


@pytest.mark.parametrize(
    ("lora", "message"),
    [({"scaling": "sqrt", "scale": 2.0}, "lora.scaling"), ({"scale": -1.0}, "lora.scale")],
)
def test_a_bad_rule_is_a_config_error(lora, message):
    with pytest.raises(ConfigError, match=message):
        load_scaling(lora)


@pytest.mark.parametrize("rank", [1, 3, 8])
def test_our_rslora_layer_scales_exactly_as_peft_use_rslora(tiny_bert, rank):
    peft_model = get_peft_model(
        copy.deepcopy(tiny_bert),
        LoraConfig(r=rank, lora_alpha=6.0, use_rslora=True, target_modules=["query", "value"]),
    )
    peft_scaling = {
        name.removeprefix("base_model.model."): module.scaling["default"]
        for name, module in peft_model.named_modules()
        if hasattr(module, "scaling") and isinstance(module.scaling, dict)
    }
    targets = find_target_modules(tiny_bert, "bert.encoder.layer", ["attention.self.query"])
    inject_lora(tiny_bert, UniformPolicy(rank=rank, scaling=Scaling("rslora", 6.0)).plan(targets))
    ours = lora_layers(tiny_bert)
    assert ours
    for name, layer in ours.items():
        assert layer.scaling == pytest.approx(peft_scaling[name])


@pytest.mark.parametrize(
    "method", ["lora", "gelora", "gelora_budget", "random", "id_proportional", "eva", "adalora"]
)
def test_every_method_takes_the_run_rule(method):
    cfg = compose_train(
        "model=tiny_bert",
        f"method={method}",
        "budget.rank=2",
        "lora.scaling=rslora",
        "lora.scale=4",
    )
    scaling = load_scaling(cfg.lora)
    built = load_method(cfg.rank_policy, scaling)
    policy = getattr(built, "policy", None) or built
    assert policy.scaling == Scaling("rslora", 4.0)


def test_budgeted_plans_give_every_rank_the_run_factor(tiny_bert):
    targets = find_target_modules(tiny_bert, "bert.encoder.layer", BERT_TARGETS)
    for method in ("gelora_budget", "random", "id_proportional"):
        cfg = compose_train("model=tiny_bert", f"method={method}", "budget.rank=2")
        plan = load_method(cfg.rank_policy, Scaling("rslora", 4.0)).plan(
            targets, DIMS, Budget(rank=2)
        )
        if method == "gelora_budget":
            assert len({a.rank for a in plan.adapters}) > 1  # the rule is checked across ranks
        for adapter in plan.adapters:
            assert adapter.alpha / adapter.rank == pytest.approx(4.0 / math.sqrt(adapter.rank))


def test_adalora_multiplies_by_the_run_factor_at_its_final_rank(tiny_bert):
    targets = find_target_modules(tiny_bert, "bert.encoder.layer", BERT_TARGETS)
    for scaling in (Scaling("constant", 2.0), Scaling("rslora", 4.0)):
        method = AdaLoRA(scaling=scaling)
        plan = method.plan(targets, None, Budget(rank=2))
        model = method.adapt(
            copy.deepcopy(tiny_bert), plan, AdaptSettings(head_modules=("classifier",))
        )
        layers = [m for m in model.modules() if hasattr(m, "ranknum")]
        assert layers
        for layer in layers:  # peft's SVDLinear: lora_alpha / ranknum (= init_r)
            factor = layer.scaling["default"] / layer.ranknum["default"].item()
            assert factor == pytest.approx(scaling.factor(2))


def test_the_default_rule_is_shared_and_gelora_paper_is_the_papers():
    default = compose_train("model=tiny_bert", "method=gelora")
    assert load_scaling(default.lora) == Scaling("constant", 2.0)
    paper = compose_train("experiment=setup/table_cpu", "method=gelora_paper")  # rank 2
    assert load_scaling(paper.lora) == Scaling("constant", 32.0)
    assert paper.budget.rank is None and paper.budget.params is None
