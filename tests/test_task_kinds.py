"""Task kinds (``gelora.kinds``): the stages look a task's kind up and hold no ``task.problem``
branch, so a kind defined here, with its own subsampling, ID-sample texts, datamodule,
LightningModule and after-test step, runs end to end through ``gelora.pipeline.run`` without a
line of a stage changed."""

from __future__ import annotations

import random
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from gelora.data.datamodule import TextClassificationDataModule
from gelora.data.qa_data import QASplit
from gelora.data.task_data import Split, TaskData
from gelora.kinds import TaskKind, kind_of, kinds, register_kind
from gelora.training.metrics import check_metrics
from gelora.training.module import LoRAClassifierModule
from tests.helpers import TINY, run_in_process

SEEN: dict[str, object] = {}  # what the stages asked of the kind (in this process)


def _subsample(split: Split, max_samples: int | None, *, seed: int) -> Split:
    """A plain seeded draw, kept in order."""
    SEEN["subsampled"] = int(SEEN.get("subsampled", 0)) + 1
    if max_samples is None or max_samples >= len(split.texts):
        return split
    kept = sorted(random.Random(seed).sample(range(len(split.texts)), max_samples))
    return Split(texts=[split.texts[i] for i in kept], labels=[split.labels[i] for i in kept])


def _check_metrics(names: list[str], num_labels: int) -> None:
    SEEN["metrics_checked"] = list(names)
    check_metrics(names, "regression", num_labels)  # scored like a regression


def _datamodule(task, tokenizer, task_cfg, *, token_cache_dir=None, **common):
    SEEN["datamodule"] = sorted(common)
    return TextClassificationDataModule(task, tokenizer, **common)


class ScoreModule(LoRAClassifierModule):
    """One logit per text, scored like a regression."""

    def __init__(self, model, **common):
        super().__init__(model, num_labels=1, problem="regression", **common)


def _module(model, task, datamodule, settings, **common):
    SEEN["module"] = type(datamodule).__name__
    return ScoreModule(model, **common)


def _prompts(tokenizer, texts: list[str]) -> list[str]:
    SEEN["id_texts"] = len(texts)
    return [f"score this: {text}" for text in texts]


def _after_test(settings, model, backbone, method: str, out_dir: Path):
    SEEN["after_test"] = method
    return SimpleNamespace(
        scores={"toy_marker": 1.0}, seconds={"toy_s": 0.0}, files={}, unscored={}
    )


TOY = register_kind(
    TaskKind(
        name="toy_scores",
        split_type=Split,
        subsample=_subsample,
        head="sequence_classification",
        problem_type="regression",
        check_metrics=_check_metrics,
        datamodule=_datamodule,
        module=_module,
        prompt_texts=_prompts,
        after_test=_after_test,
    )
)

WORDS = ["good", "bad", "fine", "awful", "great", "dull", "bright", "grim"]


def _split(n: int, offset: int) -> Split:
    rng = random.Random(offset)
    texts, labels = [], []
    for i in range(n):
        words = rng.sample(WORDS, 3)
        texts.append(f"{' '.join(words)} item {offset + i}")
        labels.append(float(sum(w in ("good", "great", "bright", "fine") for w in words)))
    return Split(texts=texts, labels=labels)


def load_toy_scores(**_) -> TaskData:
    """A task of the kind above: short texts and a score (the loader of ``task.loader``)."""
    return TaskData(
        name="toy_scores",
        train=_split(80, 0),
        validation=_split(40, 1000),
        test=_split(40, 2000),
        label_names=None,
        problem="toy_scores",
    )


def test_the_built_in_kinds_are_registered_with_their_heads_and_splits():
    assert {"classification", "regression", "extractive_qa", "instruction"} <= set(kinds())
    assert kind_of("classification").problem_type == "single_label_classification"
    assert kind_of("regression").problem_type == "regression"
    assert kind_of("extractive_qa").head == "question_answering"
    assert kind_of("extractive_qa").split_type is QASplit
    assert kind_of("instruction").head == "causal_lm"
    assert kind_of("instruction").metric_mode("response_loss") == "min"
    assert kind_of("classification").metric_mode("accuracy") == "max"
    assert kind_of("instruction").after_test is not None
    assert kind_of("classification").after_test is None
    with pytest.raises(KeyError, match="no task kind 'nope'"):
        kind_of("nope")


def test_task_data_refuses_a_kind_nobody_registered_and_the_wrong_split_type():
    with pytest.raises(ValueError, match="problem must be one of"):
        TaskData("x", _split(4, 0), _split(4, 1), _split(4, 2), None, problem="nope")
    assert load_toy_scores().num_labels == 1  # a registered kind is a valid problem


def test_no_stage_tests_the_problem():
    stages = Path(__file__).resolve().parents[1] / "src" / "gelora" / "stages"
    for path in stages.glob("*.py"):
        assert not re.search(r"problem\s*[!=]=", path.read_text()), path.name


def test_a_kind_defined_in_the_test_runs_end_to_end(tmp_path):
    SEEN.clear()
    results = run_in_process(
        tmp_path,
        *TINY,
        "task=vader_movies",
        "task.name=toy_scores",
        "task.loader._target_=tests.test_task_kinds.load_toy_scores",
    )
    assert results["status"] == "completed", results.get("error")
    assert SEEN["metrics_checked"] == ["pearson", "spearman"]
    assert SEEN["subsampled"] == 3  # train, validation, test: the kind's own draw
    assert SEEN["id_texts"] > 0  # the ID sample read through the kind's texts
    assert SEEN["module"] == "TextClassificationDataModule"
    assert "batch_size" in SEEN["datamodule"]
    assert SEEN["after_test"]  # run on the tested model, its scores in the record
    assert results["metrics"]["test/toy_marker"] == 1.0
    assert "test/pearson" in results["metrics"]
