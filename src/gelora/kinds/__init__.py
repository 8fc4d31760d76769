"""Task kinds (``task.problem``): each a ``TaskKind`` owning its splits, head, datamodule,
LightningModule, ID-sample texts, metric direction and after-test step; the stages look a kind
up with ``kind_of`` and hold no branch on ``task.problem``."""

from gelora.kinds.base import TaskKind, kind_of, kinds, register_kind
from gelora.kinds.classification import CLASSIFICATION, REGRESSION
from gelora.kinds.extractive_qa import EXTRACTIVE_QA
from gelora.kinds.instruction import INSTRUCTION

__all__ = [
    "CLASSIFICATION",
    "EXTRACTIVE_QA",
    "INSTRUCTION",
    "REGRESSION",
    "TaskKind",
    "kind_of",
    "kinds",
    "register_kind",
]
