"""SQuAD v1.1's exact match and F1, and the span logits they are computed from.

The scores are the official evaluation script's (``evaluate-v1.1.py``, Rajpurkar et al. 2016):
answers are normalised (lower case, punctuation removed, the articles a/an/the removed,
whitespace collapsed); exact match is equality of the normalised strings, F1 the harmonic mean
of precision and recall over their bags of tokens; each question takes its best score over its
gold answers, and a split scores the mean over questions. Here they are fractions in [0, 1], like
every metric of gelora (tables print them times 100, the paper's unit).

torchmetrics' ``SQuAD`` follows the same script with one difference: a gold answer that is empty
after normalisation (``"the"``) and an empty prediction score F1 1 there (SQuAD 2.0's rule for
no-answer questions) and 0 in the v1.1 script. The tests check that both agree on real answers.
"""

from __future__ import annotations

import collections
import re
import string
from collections.abc import Sequence

import torch
from torchmetrics import Metric

QA_METRICS = ("exact_match", "f1")  # SQuAD v1.1's, both from one span decoding
_PUNCTUATION = set(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    """Lower case, drop punctuation, drop the articles a/an/the, collapse whitespace (in the
    official script's order)."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, gold: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


def token_f1(prediction: str, gold: str) -> float:
    """F1 over the bags of normalised tokens; 0 when they share none (v1.1's rule, also for an
    empty gold answer)."""
    predicted = normalize_answer(prediction).split()
    expected = normalize_answer(gold).split()
    common = collections.Counter(predicted) & collections.Counter(expected)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(predicted), same / len(expected)
    return 2 * precision * recall / (precision + recall)


def squad_scores(predictions: Sequence[str], golds: Sequence[Sequence[str]]) -> dict[str, float]:
    """Mean over questions of the best exact match and F1 over each question's gold answers."""
    if len(predictions) != len(golds):
        raise ValueError(f"{len(predictions)} predictions for {len(golds)} questions")
    if not predictions:
        raise ValueError("no predictions to score")
    em = [max(exact_match(p, g) for g in gold) for p, gold in zip(predictions, golds, strict=True)]
    f1 = [max(token_f1(p, g) for g in gold) for p, gold in zip(predictions, golds, strict=True)]
    return {"exact_match": sum(em) / len(em), "f1": sum(f1) / len(f1)}


class SpanLogits(Metric):
    """The start and end logits of every window of a split, kept until the split is scored.

    Scores need whole questions (a question's windows may fall in different batches), so the
    logits are stored, padded to ``width`` tokens with a very negative value, with each window's
    index. In a distributed run ``compute`` gathers every process's windows; a window seen by
    more than one process is kept once.
    """

    full_state_update = False
    PAD = -1e9  # below any real logit: a padded position is never a span's best start or end

    def __init__(self, width: int):
        super().__init__()
        self.width = width
        self.add_state("index", default=[], dist_reduce_fx="cat")
        self.add_state("start", default=[], dist_reduce_fx="cat")
        self.add_state("end", default=[], dist_reduce_fx="cat")

    def _padded(self, logits: torch.Tensor) -> torch.Tensor:
        logits = logits.detach().float()
        if logits.shape[1] > self.width:
            raise ValueError(f"{logits.shape[1]} tokens, more than the width {self.width}")
        return torch.nn.functional.pad(logits, (0, self.width - logits.shape[1]), value=self.PAD)

    def update(
        self, index: torch.Tensor, start_logits: torch.Tensor, end_logits: torch.Tensor
    ) -> None:
        self.index.append(index.detach().long())
        self.start.append(self._padded(start_logits))
        self.end.append(self._padded(end_logits))

    def compute(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(index, start, end)`` on the CPU, one row per distinct window, sorted by index."""
        index, start, end = (
            torch.cat(x).cpu() if isinstance(x, list) else x.cpu()
            for x in (self.index, self.start, self.end)
        )
        unique, first = _first_occurrences(index)
        return unique, start[first], end[first]


def _first_occurrences(index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The distinct values of ``index`` in increasing order, and where each first occurs."""
    order = torch.argsort(index, stable=True)
    sorted_index = index[order]
    keep = torch.ones_like(sorted_index, dtype=torch.bool)
    keep[1:] = sorted_index[1:] != sorted_index[:-1]
    return sorted_index[keep], order[keep]
