"""Our LoRA layer: a frozen ``nn.Linear`` plus a trainable low-rank update (Hu et al. 2021).

``y = W x + b + (alpha / r) * B A x`` with ``A: r x in`` and ``B: out x r``. Following peft's
``LoraLayer``, the original layer is wrapped as ``base_layer`` (not subclassed), ``A`` gets
Kaiming-uniform init and ``B`` zeros, so the model is unchanged at step 0; merging the update into
the base weight is explicit (``merge`` / ``unmerge``), never a side effect of ``eval()``.

Two things make a step cheaper than peft's with the same parameters and the same result:
the up-projection, scaling and residual add are one ``addmm`` (no full-width temporaries), and
layers that read the same input tensor (query, key and value) may share one down-projection
GEMM, ``x [A_q; A_k; A_v]^T``, so ``x`` is read once and its gradient gets one product, not three.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class FusedLoRALinear(torch.autograd.Function):
    """``y = x W^T + b + s (x A^T) B^T`` with a hand-written backward.

    Autograd would give ``x`` two gradients, ``g W`` from the base map and ``(s g B) A`` from the
    adapter, and add them in a third full-width tensor. Here the second is accumulated into the
    first by one ``addmm_``; the forward saves only ``x`` (which the base map needs anyway) and the
    rank-wide ``x A^T``. Gradients for ``W`` and ``b`` are computed only if they require them.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, lora_a, lora_b, scaling: float):
        flat = x.reshape(-1, x.shape[-1])
        projected = flat @ lora_a.t()
        out = torch.addmm(bias, flat, weight.t()) if bias is not None else flat @ weight.t()
        out.addmm_(projected, lora_b.t(), alpha=scaling)
        ctx.save_for_backward(flat, weight, lora_a, lora_b, projected)
        ctx.scaling = scaling
        ctx.has_bias = bias is not None
        ctx.x_shape = x.shape
        return out.view(*x.shape[:-1], weight.shape[0])

    @staticmethod
    def backward(ctx, grad_out):
        flat, weight, lora_a, lora_b, projected = ctx.saved_tensors
        grad = grad_out.reshape(-1, grad_out.shape[-1])
        grad_projected = (grad @ lora_b).mul_(ctx.scaling)
        need_x, need_w, need_b, need_a, need_lb, _ = ctx.needs_input_grad
        grad_x = grad_w = grad_b = grad_a = grad_lb = None
        if need_x:
            grad_x = (grad @ weight).addmm_(grad_projected, lora_a).view(ctx.x_shape)
        if need_w:
            grad_w = grad.t() @ flat
        if need_b and ctx.has_bias:
            grad_b = grad.sum(0)
        if need_a:
            grad_a = grad_projected.t() @ flat
        if need_lb:
            grad_lb = (grad.t() @ projected).mul_(ctx.scaling)
        return grad_x, grad_w, grad_b, grad_a, grad_lb, None


class SharedDownProjection:
    """One down-projection GEMM for LoRA layers that are called with the same input tensor.

    The first member called with a tensor computes ``x @ cat(A_i)^T`` and caches it; the others
    take their column slice. The cache is keyed on the tensor object itself, its in-place version,
    the factors' versions and the grad mode, so a member called with any other input (or after an
    optimizer step changed an ``A``) recomputes: correctness never depends on the grouping. The
    cache is dropped once every member has taken its slice.

    Not an ``nn.Module``: it owns no parameters, and the members stay where they are in the model.
    """

    def __init__(self, members: Sequence[LoRALinear]):
        if len(members) < 2:
            raise ValueError("a shared down-projection needs at least two LoRA layers")
        widths = {m.in_features for m in members}
        if len(widths) != 1:
            raise ValueError(f"layers sharing an input need one input width, got {widths}")
        if any(not isinstance(m.lora_dropout, nn.Identity) for m in members):
            raise ValueError("dropout draws one mask per layer: layers with dropout cannot share")
        self.members = list(members)
        self.slices: dict[int, slice] = {}
        start = 0
        for member in self.members:
            self.slices[id(member)] = slice(start, start + member.rank)
            start += member.rank
        self._cache: tuple | None = None
        self._taken: set[int] = set()

    def _key(self, x: torch.Tensor) -> tuple:
        versions = tuple(m.lora_A.weight._version for m in self.members)
        # Inference tensors (torch.inference_mode, e.g. Lightning's test loop) carry no version.
        x_version = None if x.is_inference() else x._version
        return (x_version, versions, torch.is_grad_enabled())

    def project(self, member: LoRALinear, x: torch.Tensor) -> torch.Tensor:
        cache, key = self._cache, self._key(x)
        fresh = cache is not None and cache[0] is x and cache[1] == key
        if not fresh or id(member) in self._taken:
            weight = torch.cat([m.lora_A.weight for m in self.members])
            cache = self._cache = (x, key, F.linear(x, weight))
            self._taken = set()
        self._taken.add(id(member))
        projected = cache[2][..., self.slices[id(member)]]
        if len(self._taken) == len(self.members):
            self._cache = None  # every member has its slice: do not keep activations alive
        return projected


class LoRALinear(nn.Module):
    """A LoRA-adapted linear map; it applies ``scaling = alpha / rank``, with alpha set by the
    run's one scaling rule (``gelora.ranks.scaling``)."""

    def __init__(self, base_layer: nn.Linear, rank: int, alpha: float, dropout: float = 0.0):
        super().__init__()
        if not isinstance(base_layer, nn.Linear):
            raise TypeError(f"LoRALinear wraps nn.Linear, got {type(base_layer).__name__}")
        if rank < 1:
            raise ValueError(f"rank must be >= 1, got {rank}")
        self.base_layer = base_layer
        self.rank = rank
        self.alpha = float(alpha)
        self.scaling = self.alpha / rank
        weight = base_layer.weight
        factory = {"device": weight.device, "dtype": weight.dtype}
        self.lora_A = nn.Linear(base_layer.in_features, rank, bias=False, **factory)
        self.lora_B = nn.Linear(rank, base_layer.out_features, bias=False, **factory)
        self.lora_dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.shared_down_projection: SharedDownProjection | None = None
        self.merged = False
        self.reset_lora_parameters()

    @property
    def in_features(self) -> int:
        return self.base_layer.in_features

    @property
    def out_features(self) -> int:
        return self.base_layer.out_features

    @property
    def weight(self) -> torch.Tensor:
        """The base weight, for code that reads ``module.weight`` (e.g. dtype checks)."""
        return self.base_layer.weight

    def reset_lora_parameters(self) -> None:
        # peft's default: A ~ Kaiming-uniform(a=sqrt(5)), B = 0.
        nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_B.weight)

    def delta_weight(self) -> torch.Tensor:
        """The update ``scaling * B A`` in the base weight's shape ``(out, in)``."""
        return (self.lora_B.weight @ self.lora_A.weight) * self.scaling

    def down_project(self, x: torch.Tensor) -> torch.Tensor:
        """``A x`` (after dropout), through the shared GEMM when this layer is in a group."""
        x = x.to(self.lora_A.weight.dtype)
        if self.shared_down_projection is not None:
            return self.shared_down_projection.project(self, x)
        return self.lora_A(self.lora_dropout(x))

    def _fusable(self, x: torch.Tensor) -> bool:
        """The fused path: a plain ``nn.Linear``, no dropout or shared projection, one dtype and
        no autocast (mixed precision keeps to the autograd path, which autocast understands)."""
        weight = self.base_layer.weight
        return (
            type(self.base_layer) is nn.Linear
            and self.shared_down_projection is None
            and isinstance(self.lora_dropout, nn.Identity)
            and not torch.is_autocast_enabled(x.device.type)
            and x.dtype == weight.dtype == self.lora_A.weight.dtype == self.lora_B.weight.dtype
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.merged and self._fusable(x):
            return FusedLoRALinear.apply(
                x,
                self.base_layer.weight,
                self.base_layer.bias,
                self.lora_A.weight,
                self.lora_B.weight,
                self.scaling,
            )
        result = self.base_layer(x)
        if self.merged:
            return result
        projected = self.down_project(x)
        up = self.lora_B.weight
        if projected.dtype != result.dtype or up.dtype != result.dtype:  # e.g. a half base layer
            return result + (self.lora_B(projected) * self.scaling).to(result.dtype)
        # result + scaling * projected @ B^T as one GEMM with accumulate: no full-width temporaries.
        fused = torch.addmm(
            result.reshape(-1, result.shape[-1]),
            projected.reshape(-1, projected.shape[-1]),
            up.t(),
            alpha=self.scaling,
        )
        return fused.view(result.shape)

    @torch.no_grad()
    def merge(self, *, safe: bool = True) -> None:
        """Add the update into the base weight; with ``safe``, refuse a non-finite result."""
        if self.merged:
            return
        merged = self.base_layer.weight + self.delta_weight().to(self.base_layer.weight.dtype)
        if safe and not torch.isfinite(merged).all():
            raise ValueError("merging the LoRA update gives non-finite weights; not merged")
        self.base_layer.weight.copy_(merged)
        self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        if not self.merged:
            return
        self.base_layer.weight -= self.delta_weight().to(self.base_layer.weight.dtype)
        self.merged = False

    def extra_repr(self) -> str:
        merged = self.merged
        return f"rank={self.rank}, alpha={self.alpha:g}, scaling={self.scaling:g}, {merged=}"
