"""Baselines whose rank allocation comes from peft: AdaLoRA and EVA, at our budgets.

- ``AdaLoRAPolicy`` (Zhang et al., ICLR 2023): peft's AdaLoRA owns the model (SVD-form adapters
  whose ranks are pruned during training by a sensitivity score on a cubic budget schedule). Our
  plan records its *final* budget, ``target_r`` per matrix, i.e. ``target_r x n_matrices`` rank
  units as AdaLoRA counts them; it starts at ``init_r = init_r_factor x target_r``.
- ``EvaPolicy`` (Paischer et al. 2024, peft's ``init_lora_weights="eva"``): an incremental SVD of
  every target's inputs on training batches; components are handed out by explained variance,
  ``r x n_matrices`` rank units in all (at most ``rho x r`` per matrix). We take peft's ranks and
  its components (the initial ``A``) and train them in our own LoRA layers.

Both count budgets in rank units, as their papers and peft do: when ranks move between matrices
of different shapes their parameter count drifts from the uniform-rank budget, so both report
their exact counts.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch
from torch import nn

from gelora.ranks.budget import Budget
from gelora.ranks.plan import RankPlan, TargetModule
from gelora.ranks.policies import checked_alpha_over_rank


def equivalent_uniform_rank(targets: Sequence[TargetModule], budget: Budget | None, default: int):
    """``budget.rank``, or the largest uniform rank a parameter budget affords (at least 1)."""
    if budget is None:
        return default
    if budget.rank is not None:
        return budget.rank
    return max(1, budget.params // sum(t.lora_params(1) for t in targets))


def _fraction_or_steps(value: float, total_steps: int, key: str) -> int:
    """A value below 1 is a share of the total steps; 1 or more is a step count."""
    if value < 0:
        raise ValueError(f"rank_policy.{key} must be >= 0, got {value}")
    return round(value * total_steps) if value < 1 else int(value)


class AdaLoRAPolicy:
    """peft's AdaLoRA with its final budget equal to ours.

    ``tinit``/``tfinal`` are warm-up and final fine-tuning phases (steps, or shares of the total
    when below 1); ``deltaT`` the steps between budget updates; ``total_step`` is set from the
    trainer's ``estimated_stepping_batches`` when training starts (``AdaLoRAAllocation``).
    """

    name = "adalora"
    needs_intrinsic_dims = False
    wraps_model = True

    def __init__(
        self,
        target_r: int = 8,
        init_r_factor: float = 1.5,
        tinit: float = 0.1,
        tfinal: float = 0.2,
        deltaT: int = 10,
        beta1: float = 0.85,
        beta2: float = 0.85,
        orth_reg_weight: float = 0.5,
        alpha_over_rank: float = 2.0,
    ):
        if target_r < 1:
            raise ValueError(f"rank_policy.target_r must be >= 1, got {target_r}")
        if init_r_factor < 1:
            raise ValueError(f"rank_policy.init_r_factor must be >= 1, got {init_r_factor}")
        if deltaT < 1:
            raise ValueError(f"rank_policy.deltaT must be >= 1, got {deltaT}")
        self.target_r = target_r
        self.init_r_factor = init_r_factor
        self.tinit = tinit
        self.tfinal = tfinal
        self.deltaT = deltaT
        self.beta1 = beta1
        self.beta2 = beta2
        self.orth_reg_weight = orth_reg_weight
        self.alpha_over_rank = checked_alpha_over_rank(alpha_over_rank)

    def plan(
        self,
        targets: Sequence[TargetModule],
        intrinsic_dims: Sequence[float] | None = None,
        budget: Budget | None = None,
    ) -> RankPlan:
        """The final budget: ``target_r`` on every target (AdaLoRA moves it during training)."""
        target_r = equivalent_uniform_rank(targets, budget, self.target_r)
        init_r = self.init_r(target_r)
        notes = [
            f"AdaLoRA: final budget {target_r} x {len(targets)} rank units, "
            f"starting from init_r={init_r} per matrix"
        ]
        return RankPlan.from_target_ranks(
            self.name,
            targets,
            [target_r] * len(targets),
            lambda r: self.alpha_over_rank * r,
            notes=notes,
        )

    def init_r(self, target_r: int) -> int:
        return max(target_r, math.ceil(self.init_r_factor * target_r))

    def wrap(self, model: nn.Module, plan: RankPlan, head_modules: Sequence[str] = ()):
        """The model wrapped by peft's AdaLoRA on the plan's modules (heads fully trained)."""
        from peft import AdaLoraConfig, get_peft_model

        target_r = plan.adapters[0].rank
        init_r = self.init_r(target_r)
        config = AdaLoraConfig(
            target_r=target_r,
            init_r=init_r,
            # peft's SVDLinear scales by lora_alpha / init_r (its ranknum), fixed in training.
            lora_alpha=self.alpha_over_rank * init_r,
            target_modules=[a.module_name for a in plan.adapters],
            modules_to_save=list(head_modules) or None,
            total_step=1_000_000,  # placeholder: AdaLoRAAllocation sets the real one at fit start
            tinit=0,
            tfinal=0,
            deltaT=self.deltaT,
            beta1=self.beta1,
            beta2=self.beta2,
            orth_reg_weight=self.orth_reg_weight,
            lora_dropout=0.0,
            # Without a task type, PeftModel.forward calls the bare transformers model and
            # skips AdaLoraModel.forward, which is where the orthogonal regulariser is added.
            task_type="SEQ_CLS",
        )
        return get_peft_model(model, config)

    def schedule(self, total_steps: int) -> dict[str, int]:
        """peft's ``total_step``, ``tinit`` and ``tfinal`` for a run of ``total_steps``."""
        tinit = _fraction_or_steps(self.tinit, total_steps, "tinit")
        tfinal = _fraction_or_steps(self.tfinal, total_steps, "tfinal")
        if total_steps - tinit - tfinal <= 0:
            raise ValueError(
                f"AdaLoRA needs steps to prune in: tinit={tinit} + tfinal={tfinal} >= "
                f"{total_steps} optimizer steps; lower rank_policy.tinit/tfinal or train longer"
            )
        return {"total_step": total_steps, "tinit": tinit, "tfinal": tfinal}


class EvaPolicy:
    """peft's EVA: ranks and initial ``A`` from an SVD of each target's input activations."""

    name = "eva"
    needs_intrinsic_dims = False
    needs_activations = True

    def __init__(
        self,
        rank: int = 8,
        rho: float = 2.0,
        tau: float = 0.99,
        whiten: bool = False,
        alpha_over_rank: float = 2.0,
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
        self.alpha_over_rank = checked_alpha_over_rank(alpha_over_rank)
        self.max_batches = max_batches
        self.components: dict[str, torch.Tensor] | None = None

    def fit_activations(
        self,
        model: nn.Module,
        batches: Iterable[dict[str, torch.Tensor]],
        targets: Sequence[TargetModule],
        budget: Budget | None,
    ) -> None:
        """Run peft's ``get_eva_state_dict`` on the frozen model; keeps ranks and components."""
        from peft import EvaConfig, LoraConfig
        from peft.tuners.lora.eva import get_eva_state_dict

        rank = equivalent_uniform_rank(targets, budget, self.rank)
        config = LoraConfig(
            r=rank,
            lora_alpha=self.alpha_over_rank * rank,
            target_modules=[t.name for t in targets],
            init_lora_weights="eva",
            eva_config=EvaConfig(rho=self.rho, tau=self.tau, whiten=self.whiten),
        )
        inputs = [
            {k: v for k, v in batch.items() if k != "labels"}  # EVA masks tokens, not sequences
            for batch, _ in zip(batches, range(self.max_batches), strict=False)
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
            raise RuntimeError("EvaPolicy.plan needs fit_activations first")
        ranks = [
            int(self.components[t.name].shape[0]) if t.name in self.components else 0
            for t in targets
        ]
        notes = [
            f"EVA: {sum(ranks)} rank units = {self.budget_rank} x {len(targets)} matrices, "
            f"at most {round(self.rho * self.budget_rank)} per matrix"
        ]
        return RankPlan.from_target_ranks(
            self.name, targets, ranks, lambda r: self.alpha_over_rank * r, notes=notes
        )

    @torch.no_grad()
    def initialize(self, model: nn.Module) -> None:
        """Copy the EVA components into each injected layer's ``A`` (``B`` stays zero)."""
        from gelora.lora.inject import lora_layers

        for name, layer in lora_layers(model).items():
            layer.lora_A.weight.copy_(self.components[name].to(layer.lora_A.weight))
