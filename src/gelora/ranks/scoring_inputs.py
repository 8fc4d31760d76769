"""What an allocator that scores the model reads: the frozen model as it scores it, and the batches.

The model is the pretrained one with its new head redrawn with a fixed seed (``HEAD_SEED``), so
the plan does not depend on the training seed that drew the run's head, in eval mode (dropout
off: a score is a function of the weights and the batches only), with only the target weights
asking for gradients (``scoring_model``); the batches are training batches drawn with the
allocator's seed, not the training seed (``draw_batches``). ``ScoreInputs`` carries both to a
scoring function (``gelora.ranks.scoring.ScoringAllocator.score``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from gelora.ranks.plan import TargetModule

HEAD_SEED = 0  # the new head the scores see: fixed, so neither seed moves it


def draw_batches(
    train_batches: Callable[[], Iterable[dict]], seed: int, n_batches: int
) -> list[dict[str, torch.Tensor]]:
    """``n_batches`` training batches of the run's batch size, rows drawn without replacement
    with ``seed`` (not the training seed; the same on every process), collated as training
    collates them. Fewer when the split holds fewer rows."""
    loader = train_batches()
    dataset, collate = getattr(loader, "dataset", None), getattr(loader, "collate_fn", None)
    size = getattr(getattr(loader, "batch_sampler", None), "batch_size", None) or getattr(
        loader, "batch_size", None
    )
    if dataset is None or collate is None or not size:
        raise ValueError("the training loader has no dataset, collate_fn and batch size to draw")
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed)).tolist()
    rows = order[: n_batches * size]
    return [
        collate([dataset[i] for i in rows[start : start + size]])
        for start in range(0, len(rows), size)
    ]


def batches_digest(batches: Sequence[dict[str, torch.Tensor]]) -> str:
    """sha256 of the batches' tensors (keys, dtypes, shapes, values), in order."""
    digest = hashlib.sha256()
    for batch in batches:
        for key in sorted(batch):
            data = torch.as_tensor(batch[key]).detach().cpu().contiguous()
            digest.update(f"{key}|{data.dtype}|{tuple(data.shape)}".encode())
            digest.update(data.view(torch.uint8).numpy().tobytes() if data.numel() else b"")
    return digest.hexdigest()


@torch.no_grad()
def redraw_head(model: nn.Module, head_modules: Sequence[str], seed: int) -> None:
    """Draw the new head's weights with ``seed``, as Hugging Face draws a new head: linear and
    embedding weights normal with std ``config.initializer_range`` (0.02), biases 0, norms 1."""
    std = float(getattr(getattr(model, "config", None), "initializer_range", 0.02))
    generator = torch.Generator().manual_seed(seed)
    for name in head_modules:
        for module in model.get_submodule(name).modules():
            if isinstance(module, nn.Linear | nn.Embedding):
                drawn = torch.empty(module.weight.shape).normal_(0.0, std, generator=generator)
                module.weight.copy_(drawn)
            if isinstance(module, nn.LayerNorm) and module.weight is not None:
                module.weight.fill_(1.0)
            if getattr(module, "bias", None) is not None:
                module.bias.zero_()


@contextmanager
def scoring_model(
    model: nn.Module, head_modules: Sequence[str], targets: Sequence[TargetModule]
) -> Iterator[list[torch.Tensor]]:
    """``model`` in eval mode, its head redrawn with ``HEAD_SEED``, only the target weights asking
    for gradients (yielded, in target order); all restored afterwards."""
    head = {name: model.get_submodule(name) for name in head_modules}
    saved = {name: {k: v.clone() for k, v in m.state_dict().items()} for name, m in head.items()}
    wanted = {name: p.requires_grad for name, p in model.named_parameters()}
    was_training = model.training
    weights = [model.get_submodule(t.name).weight for t in targets]
    try:
        model.eval()
        model.requires_grad_(False)
        for weight in weights:
            weight.requires_grad_(True)
        redraw_head(model, head_modules, HEAD_SEED)
        yield weights
    finally:
        for name, module in head.items():
            module.load_state_dict(saved[name])
        for name, parameter in model.named_parameters():
            parameter.requires_grad_(wanted[name])
        model.train(was_training)


def batch_loss(model: nn.Module, batch: dict, device: torch.device) -> torch.Tensor:
    """The model's own loss (the task's, as training computes it) on one batch."""
    inputs = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
    return model(**inputs).loss


def batch_gradients(
    model: nn.Module, weights: Sequence[torch.Tensor], batches: Iterable[dict]
) -> Iterator[tuple[torch.Tensor, ...]]:
    """Per batch, the gradient of the model's loss (the task's) w.r.t. each of ``weights``."""
    device = weights[0].device
    for batch in batches:
        yield torch.autograd.grad(batch_loss(model, batch, device), list(weights))


@dataclass(frozen=True)
class ScoreInputs:
    """What a scoring function reads.

    Attributes:
        model: the frozen model, eval mode, its new head drawn with ``HEAD_SEED``.
        targets: the target matrices, in order.
        weights: their weight tensors (``out x in``), the only tensors asking for gradients.
        batches: the drawn training batches (empty for an allocator that reads no batches).
        seed: the draw's seed (the batches'; an allocator's own random draws use it too).
    """

    model: nn.Module
    targets: tuple[TargetModule, ...]
    weights: tuple[torch.Tensor, ...]
    batches: tuple[dict, ...]
    seed: int

    def gradients(self) -> Iterator[tuple[torch.Tensor, ...]]:
        """Per batch, the loss gradient w.r.t. every target weight (``batch_gradients``)."""
        return batch_gradients(self.model, self.weights, self.batches)
