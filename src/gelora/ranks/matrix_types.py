"""The matrix-type control: at the same parameter budget, adapt attention only or MLP only.

Whether an allocator's gain comes from where in depth it puts rank, or from which kind of matrix
(attention or MLP) gets it, needs this control beside uniform LoRA on every matrix (``lora``):
the budget (counted on all the model's target matrices, as for every row) spent uniformly on
the matrices of the chosen types, the others left unadapted. A target's type is read from its
name inside the block (``matrix_type``): ``attention`` when the first part of that name holds
``attention`` or ``attn`` (BERT's ``attention.self.query`` and ``attention.output.dense``,
Llama's ``self_attn.q_proj``, MPNet's ``attention.attn.q``), ``mlp`` otherwise
(``intermediate.dense``, ``output.dense``, ``mlp.up_proj``). Allocators that score each matrix
(``per = "matrix"``) move rank across types themselves.
"""

from __future__ import annotations

from collections.abc import Sequence

from gelora.ranks.allocator import Allocator, require_budget
from gelora.ranks.budget import Budget, allocate_ranks
from gelora.ranks.plan import RankPlan, TargetModule, within_block
from gelora.ranks.scaling import Scaling

MATRIX_TYPES = ("attention", "mlp")
ATTENTION_MARKERS = ("attention", "attn")


def matrix_type(target: TargetModule) -> str:
    """``attention`` or ``mlp``, from the first part of the target's name within its block."""
    first = within_block(target.name, target.block).split(".")[0]
    return "attention" if any(m in first for m in ATTENTION_MARKERS) else "mlp"


class MatrixTypePolicy(Allocator):
    """Control: uniform LoRA on the target matrices of ``types`` only, at the run's budget.

    The rank is the largest uniform rank the budget affords on those matrices; what is left
    goes one rank unit at a time to the earliest of them that still fit (``allocate_ranks``), so
    the plan misses the budget by less than one rank unit; the plan's notes give the exact count.
    """

    needs_intrinsic_dims = False
    needs_budget = True

    def __init__(
        self,
        types: Sequence[str] = ("attention",),
        scaling: Scaling | None = None,
        name: str | None = None,
    ):
        types = (types,) if isinstance(types, str) else tuple(types)
        unknown = [t for t in types if t not in MATRIX_TYPES]
        if not types or unknown or len(set(types)) != len(types):
            raise ValueError(
                f"rank_policy.types must name some of {', '.join(MATRIX_TYPES)} once each, "
                f"got {list(types)}"
            )
        super().__init__(scaling)
        self.types = types
        self.name = name or f"lora_{'_'.join(types)}_only"

    def plan(
        self,
        targets: Sequence[TargetModule],
        intrinsic_dims: Sequence[float] | None = None,
        budget: Budget | None = None,
    ) -> RankPlan:
        budget = require_budget(budget, self.name)
        chosen = [t for t in targets if matrix_type(t) in self.types]
        if not chosen:
            names = sorted({within_block(t.name, t.block) for t in targets})
            raise ValueError(f"no target matrix is of type {'/'.join(self.types)}: {names}")
        n_params = budget.n_params(targets)
        rank = n_params // sum(t.lora_params(1) for t in chosen)
        if rank < 1:
            raise ValueError(
                f"the budget of {n_params:,} parameters is below one rank on each of the "
                f"{len(chosen)} {'/'.join(self.types)} matrices"
            )
        spent = allocate_ranks(chosen, n_params, [1.0] * len(chosen), [rank] * len(chosen))
        rank_of = {t.name: r for t, r in zip(chosen, spent, strict=True)}
        ranks = [rank_of.get(t.name, 0) for t in targets]
        cost = sum(t.lora_params(r) for t, r in zip(targets, ranks, strict=True))
        raised = sum(r > rank for r in spent)
        note = (
            f"{'/'.join(self.types)} only: rank {rank} on {len(chosen)} of {len(targets)} "
            f"matrices ({raised} of them one rank more), {cost:,} parameters of the budget's "
            f"{n_params:,}"
        )
        notes = [f"budget: {budget.describe(targets)}", note]
        return RankPlan.from_target_ranks(self.name, targets, ranks, self.scaling, notes=notes)
