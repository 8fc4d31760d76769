"""Classification and regression: texts (or text pairs) in, a sequence-classification head
(one logit for regression), torchmetrics scores (``gelora.training.metrics``)."""

from __future__ import annotations

from gelora.data.datamodule import TextClassificationDataModule
from gelora.data.from_files import read_classification, read_regression
from gelora.data.task_data import Split, stratified_subsample
from gelora.kinds.base import TaskKind, register_kind
from gelora.training.metrics import check_metrics
from gelora.training.module import LoRAClassifierModule


def text_datamodule(task, tokenizer, task_cfg, *, token_cache_dir=None, **common):
    return TextClassificationDataModule(task, tokenizer, token_cache_dir=token_cache_dir, **common)


def classifier_module(model, task, datamodule, settings, **common):
    return LoRAClassifierModule(model, num_labels=task.num_labels, problem=task.problem, **common)


def _kind(name: str, problem_type: str, *, labels_named: bool, read_files) -> TaskKind:
    return TaskKind(
        name=name,
        split_type=Split,
        subsample=stratified_subsample,
        head="sequence_classification",
        problem_type=problem_type,
        check_metrics=lambda names, num_labels: check_metrics(names, name, num_labels),
        datamodule=text_datamodule,
        module=classifier_module,
        labels_named=labels_named,
        read_files=read_files,
    )


CLASSIFICATION = register_kind(
    _kind(
        "classification",
        "single_label_classification",
        labels_named=True,
        read_files=read_classification,
    )
)
REGRESSION = register_kind(
    _kind("regression", "regression", labels_named=False, read_files=read_regression)
)
