"""The held-out loss of an instruction-tuned causal LM: mean cross-entropy per response token,
and its perplexity.

The mean is over every response token of a split (token-weighted, as a language model's
perplexity is defined: ``exp`` of the mean negative log-likelihood per predicted token), not a
mean of per-batch means, so it does not depend on how the rows are batched. Both are
lower-is-better: the checkpoint with the lowest validation ``response_loss`` is the one tested.
"""

from __future__ import annotations

import math

import torch
from torchmetrics import Metric

IGNORE = -100  # Hugging Face's ignored label (gelora.data.instruction_datamodule masks with it)
INSTRUCTION_METRICS = ("response_loss", "perplexity")
LOWER_IS_BETTER = frozenset(INSTRUCTION_METRICS)


def response_token_nll(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Summed negative log-likelihood of the labelled tokens and their count: the logits at
    position t predict the token at t + 1 (Hugging Face's causal-LM shift), ``-100`` skipped."""
    predicted = logits[:, :-1].float()
    targets = labels[:, 1:]
    total = torch.nn.functional.cross_entropy(
        predicted.reshape(-1, predicted.shape[-1]),
        targets.reshape(-1),
        ignore_index=IGNORE,
        reduction="sum",
    )
    return total, int((targets != IGNORE).sum())


class ResponseLoss(Metric):
    """Summed response-token NLL and token count over a split; ``compute`` gives both metrics."""

    full_state_update = False

    def __init__(self):
        super().__init__()
        self.add_state("nll", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("tokens", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, logits: torch.Tensor, labels: torch.Tensor) -> None:
        total, count = response_token_nll(logits.detach(), labels)
        self.nll += total.double()
        self.tokens += count

    def compute(self) -> dict[str, torch.Tensor]:
        if int(self.tokens) == 0:
            raise ValueError("no response token to score")
        mean = self.nll / self.tokens
        return {"response_loss": mean.float(), "perplexity": torch.exp(mean).float()}


def perplexity(mean_nll: float) -> float:
    """``exp`` of a mean negative log-likelihood per token."""
    return math.exp(mean_nll)
