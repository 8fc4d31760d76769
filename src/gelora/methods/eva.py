"""EVA (Paischer et al. 2024) through peft's ``init_lora_weights="eva"``, in our LoRA layers.

An incremental SVD of every target's inputs on training batches; components are handed out by
explained variance, ``r x n_matrices`` rank units in all (at most ``rho x r`` per matrix). We take
peft's ranks and its components (the initial ``A``) and train them in our own LoRA layers.

EVA counts its budget in rank units, as its paper and peft do: when ranks move between matrices
of different shapes its parameter count drifts from the uniform-rank budget. Here the plan is
then trimmed to the budget in parameters (``trim_to_parameters``), so EVA's row spends what the
others spend.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import torch
from torch import nn

from gelora.lora.inject import lora_layers
from gelora.methods.ours import LoRALayersMethod
from gelora.ranks.budget import Budget, equivalent_uniform_rank
from gelora.ranks.plan import RankPlan, TargetModule
from gelora.ranks.scaling import Scaling


class EVA(LoRALayersMethod):
    """A ``Method``: ranks and initial ``A`` from an SVD of each target's input activations."""

    name = "eva"
    needs_intrinsic_dims = False
    prepare_timing = "activation_svd_s"

    def __init__(
        self,
        rank: int = 8,
        rho: float = 2.0,
        tau: float = 0.99,
        whiten: bool = False,
        scaling: Scaling | None = None,
        max_batches: int = 200,
    ):
        if rank < 1:
            raise ValueError(f"rank_policy.rank must be >= 1, got {rank}")
        if rho < 1:
            raise ValueError(f"rank_policy.rho must be >= 1, got {rho}")
        self.rank = rank
        self.rho = rho
        self.tau = tau
        self.whiten = whiten
        self.scaling = Scaling.of(scaling)
        self.max_batches = max_batches
        self.components: dict[str, torch.Tensor] | None = None

    def prepare(
        self,
        model: nn.Module,
        train_batches: Callable[[], Iterable[dict[str, torch.Tensor]]],
        targets: Sequence[TargetModule],
        budget: Budget | None,
    ) -> None:
        """Run peft's ``get_eva_state_dict`` on the frozen model; keeps ranks and components."""
        from peft import EvaConfig, LoraConfig
        from peft.tuners.lora.eva import get_eva_state_dict

        rank = equivalent_uniform_rank(targets, budget, self.rank)
        config = LoraConfig(
            r=rank,
            lora_alpha=self.scaling.alpha(rank),
            target_modules=[t.name for t in targets],
            init_lora_weights="eva",
            eva_config=EvaConfig(rho=self.rho, tau=self.tau, whiten=self.whiten),
        )
        inputs = [
            {k: v for k, v in batch.items() if k != "labels"}  # EVA masks tokens, not sequences
            for batch, _ in zip(train_batches(), range(self.max_batches), strict=False)
        ]
        was_training = model.training
        state = get_eva_state_dict(model.eval(), inputs, peft_config=config)
        model.train(was_training)
        self.components = {name: tensor.detach().cpu() for name, tensor in state.items()}
        self.budget_rank = rank

    def plan(
        self,
        targets: Sequence[TargetModule],
        intrinsic_dims: Sequence[float] | None = None,
        budget: Budget | None = None,
    ) -> RankPlan:
        if self.components is None:
            raise RuntimeError("EVA.plan needs prepare first")
        ranks = [
            int(self.components[t.name].shape[0]) if t.name in self.components else 0
            for t in targets
        ]
        notes = [
            f"EVA: {sum(ranks)} rank units = {self.budget_rank} x {len(targets)} matrices, "
            f"at most {round(self.rho * self.budget_rank)} per matrix"
        ]
        n_params = (budget or Budget(rank=self.budget_rank)).n_params(targets)
        trimmed = trim_to_parameters(targets, ranks, n_params)
        if trimmed != ranks:
            notes.append(
                f"EVA: {sum(r - t for r, t in zip(ranks, trimmed, strict=True))} trailing "
                f"components dropped to fit the budget of {n_params:,} parameters"
            )
        return RankPlan.from_target_ranks(self.name, targets, trimmed, self.scaling, notes=notes)

    @torch.no_grad()
    def initialize_adapters(self, model: nn.Module) -> None:
        """Copy the EVA components into each injected layer's ``A`` (``B`` stays zero)."""
        for name, layer in lora_layers(model).items():
            rank = layer.lora_A.weight.shape[0]  # after trimming: the leading components
            layer.lora_A.weight.copy_(self.components[name][:rank].to(layer.lora_A.weight))


def trim_to_parameters(
    targets: Sequence[TargetModule], ranks: Sequence[int], n_params: int
) -> list[int]:
    """Ranks that cost at most ``n_params``: EVA's allocation less trailing components.

    EVA (and peft) share ``r x n_matrices`` rank *units* by explained variance, so when units go
    to wider matrices the parameter count exceeds uniform LoRA's at rank ``r``. Each matrix's
    components are ordered by explained variance and EVA's greedy share leaves every matrix's
    last one near the same variance cut-off, so the last component of the matrix holding the
    most (the costlier on ties) is dropped until the plan fits; it then lands below the budget
    by less than one rank unit of the matrix trimmed last.
    """
    ranks = list(ranks)
    costs = [t.lora_params(1) for t in targets]
    while sum(r * c for r, c in zip(ranks, costs, strict=True)) > n_params:
        j = max((j for j, r in enumerate(ranks) if r > 0), key=lambda j: (ranks[j], costs[j]))
        ranks[j] -= 1
    return ranks
