"""``as_method``: a ``Method`` as it is, a rank policy wrapped in our LoRA layers, and a class that
looks like a method but lacks part of the protocol refused by name rather than wrapped."""

from __future__ import annotations

import inspect

import pytest

from gelora.methods.base import METHOD_MEMBERS, BaseMethod, Method
from gelora.methods.ours import InjectedLoRA, as_method
from gelora.ranks.policies import UniformPolicy


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
