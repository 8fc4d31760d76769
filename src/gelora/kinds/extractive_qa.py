"""Extractive QA: windows over contexts, a span head (start and end logits per token; its own
loss), SQuAD's exact match and F1 on decoded answers."""

from __future__ import annotations

from gelora.data.from_files import FileRequest
from gelora.data.qa_data import QASplit, subsample_questions
from gelora.data.qa_datamodule import QADataModule
from gelora.data.squad import load_squad_files
from gelora.kinds.base import TaskKind, register_kind
from gelora.training.metrics import check_metrics
from gelora.training.qa_module import LoRAQuestionAnsweringModule


def qa_datamodule(task, tokenizer, task_cfg, *, token_cache_dir=None, **common):
    return QADataModule(
        task,
        tokenizer,
        doc_stride=task_cfg.doc_stride,
        max_question_length=task_cfg.max_question_length,
        n_best=task_cfg.n_best,
        max_answer_length=task_cfg.max_answer_length,
        **common,
    )


def qa_module(model, task, datamodule, settings, **common):
    return LoRAQuestionAnsweringModule(
        model,
        decode=datamodule.predictions,
        gold_answers={n: s.answer_texts() for n, s in task.splits().items() if n != "train"},
        width=settings.max_length,
        **common,
    )


def read_squad_files(request: FileRequest):
    """SQuAD-format JSON files (``load_squad_files``); text and label columns do not apply."""
    files = request.files
    return load_squad_files(files["train"], files["validation"], files["test"], **request.carving)


EXTRACTIVE_QA = register_kind(
    TaskKind(
        name="extractive_qa",
        split_type=QASplit,
        subsample=subsample_questions,  # by question
        head="question_answering",
        problem_type=None,  # the QA head's own loss, on start and end positions
        check_metrics=lambda names, num_labels: check_metrics(names, "extractive_qa", num_labels),
        datamodule=qa_datamodule,
        module=qa_module,
        read_files=read_squad_files,
    )
)
