"""``as_method``: a ``Method`` as it is, a rank policy wrapped in our LoRA layers, and a class that
looks like a method but lacks part of the protocol refused by name rather than wrapped."""

from __future__ import annotations

import inspect

import pytest

from gelora.errors import ConfigError
from gelora.methods.base import METHOD_MEMBERS, BaseMethod, Method
from gelora.methods.ours import InjectedLoRA, as_method
from gelora.ranks import Budget, MeasuredIDs, TargetModule
from gelora.ranks.policies import UniformPolicy
from gelora.stages.plan import check_budget_given, load_method, load_scaling
from tests.helpers import CONF, compose_train


def test_method_members_are_the_protocols_own():
    declared = set(Method.__annotations__) | {
        name
        for name, value in vars(Method).items()
        if inspect.isfunction(value) and not name.startswith("_")
    }
    assert set(METHOD_MEMBERS) == declared


class _Whole(BaseMethod):
    name = "whole"
    needs_intrinsic_dims = False

    def plan(self, targets, intrinsic_dims=None, budget=None):
        raise NotImplementedError

    def adapt(self, model, plan, settings, *, initialize):
        return model


class _NoPrepareTiming:
    name = "half"
    needs_intrinsic_dims = False

    def prepare(self, model, train_batches, targets, budget):
        return None

    def plan(self, targets, intrinsic_dims=None, budget=None):
        raise NotImplementedError

    def adapt(self, model, plan, settings, *, initialize):
        return model

    def callbacks(self):
        return []

    def summary(self, model):
        return None


def test_a_method_is_kept_and_a_rank_policy_is_wrapped():
    whole = _Whole()
    assert as_method(whole) is whole
    wrapped = as_method(UniformPolicy(rank=2))
    assert isinstance(wrapped, InjectedLoRA) and wrapped.name == "lora"


def test_a_method_missing_a_member_is_refused_by_name_not_wrapped():
    refusal = r"_NoPrepareTiming has adapt but not Method's prepare_timing: subclass"
    with pytest.raises(TypeError, match=refusal):
        as_method(_NoPrepareTiming())


def test_neither_a_method_nor_a_policy_is_refused():
    with pytest.raises(TypeError, match="neither a Method nor a rank policy"):
        as_method(object())


METHODS = sorted(p.stem for p in (CONF / "method").glob("*.yaml"))
TWO_BLOCKS = [TargetModule(f"enc.{b}.q", b, 8, 8) for b in range(2)]


@pytest.mark.parametrize("name", METHODS)
def test_needs_budget_says_whether_the_method_plans_without_one(name):
    """``needs_budget`` is what the stages check before any model loads: it must agree with
    what planning without a budget does (refused, or a plan)."""
    cfg = compose_train(f"method={name}", "paths.output_dir=.")
    method = load_method(cfg.rank_policy, load_scaling(cfg.get("lora")))
    needs = getattr(method, "needs_budget", False)
    if not isinstance(method, InjectedLoRA):  # methods that score training batches first
        if needs:
            with pytest.raises(ConfigError, match="needs a budget"):
                method.prepare(None, lambda: iter(()), TWO_BLOCKS, None)
        else:
            assert name in {"adalora", "eva"}  # their own plans: a target rank, EVA's SVD
        return
    dims = MeasuredIDs([10.0, 12.0, 13.0], [0.1, 0.1, 0.1])  # with spreads: noise-aware rows
    if needs:
        with pytest.raises(ValueError, match="needs a budget"):
            method.plan(TWO_BLOCKS, dims, None)
        with pytest.raises(ConfigError, match=f"method={name} needs a budget"):
            check_budget_given(method, None)
    else:
        assert method.plan(TWO_BLOCKS, dims, None).adapters is not None
        check_budget_given(method, None)
    check_budget_given(method, Budget(rank=2))  # a budget is always enough
