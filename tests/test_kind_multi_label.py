"""A task kind brought as one module, with no file of gelora edited (issue 45, item 3).

Multi-label classification: a text may carry several of the task's labels at once. The kind
brings its own label rule (its tasks name their classes; a row's labels are a bitmask of them),
its own metric and direction (``micro_f1``: F1 pooled over every (row, label) decision, as
scikit-learn's ``f1_score(average="micro")``; higher is better), its head (Hugging Face's
sequence classifier with ``problem_type="multi_label_classification"``: one sigmoid per label,
binary cross-entropy), its datamodule (bitmasks into multi-hot float targets) and its module
(a label is predicted where its logit is positive) and its reader of the user's files
(``read_files``: a CSV whose label column lists a row's topics, read through ``task=from_files``).
It registers when this module is imported, which the config check does for the task's loader
(``task.loader._target_`` below), so no import order is needed. The tests train it end to end
(``debug=tiny``) and table it with ``gelora-table``, which reads the metric's direction from the
records.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from sklearn.metrics import f1_score
from torchmetrics import MetricCollection
from torchmetrics.classification import MultilabelF1Score

from gelora.data.datamodule import TextClassificationDataModule
from gelora.data.from_files import FileRequest
from gelora.data.tables import read_table, require_columns
from gelora.data.task_data import Split, TaskData
from gelora.kinds import TaskKind, kind_of, register_kind
from gelora.kinds.from_files import load_from_files
from gelora.training.module import LoRAClassifierModule
from tests.helpers import TINY, compose_train, run_in_process

TOPICS = ("sports", "money", "weather")
WORDS = {
    "sports": ["goal", "match", "team", "coach"],
    "money": ["bank", "price", "market", "loan"],
    "weather": ["rain", "storm", "sunny", "cloud"],
}
FILLER = ["the", "a", "today", "people", "said", "news", "city", "report"]
METRIC = "micro_f1"


def multi_hot(bitmask: torch.Tensor, n_labels: int) -> torch.Tensor:
    """Label bitmasks (``sum 2**k`` over a row's labels k) as multi-hot float rows."""
    bits = 2 ** torch.arange(n_labels, device=bitmask.device)
    return ((bitmask.unsqueeze(-1) & bits) > 0).float()


class MicroF1(MultilabelF1Score):
    """torchmetrics' micro-averaged multi-label F1, fed multi-hot float targets."""

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        super().update(preds, target.long())


class MultiLabelDataModule(TextClassificationDataModule):
    """The classification datamodule, its batches' bitmask labels turned multi-hot."""

    def __init__(self, task: TaskData, tokenizer, **common):
        super().__init__(task, tokenizer, **common)
        pad, n_labels = self.collate, task.num_labels

        def collate(rows):
            batch = pad(rows)
            batch["labels"] = multi_hot(batch["labels"], n_labels)
            return batch

        self.collate = collate


class MultiLabelModule(LoRAClassifierModule):
    """One sigmoid per label; a label is predicted where its logit is positive."""

    def __init__(self, model, *, num_labels: int, **common):
        super().__init__(
            model,
            num_labels=num_labels,
            problem="multi_label",
            make_metrics=lambda: MetricCollection(
                {METRIC: MicroF1(num_labels=num_labels, average="micro")}
            ),
            **common,
        )

    def predictions(self, logits: torch.Tensor) -> torch.Tensor:
        return (logits > 0).long()


def _subsample(split: Split, max_samples: int | None, *, seed: int) -> Split:
    if max_samples is None or max_samples >= len(split):
        return split
    return split.subset(sorted(random.Random(seed).sample(range(len(split)), max_samples)))


def _check_metrics(names: list[str], num_labels: int) -> None:
    if any(name != METRIC for name in names):
        raise ValueError(f"task.metrics: multi-label classification is scored by {METRIC}")


def read_labelled_topics(request: FileRequest) -> TaskData:
    """The kind's files (``task=from_files``): a text column and a label column listing a row's
    topics, ``|``-separated (``sports|money``), each a name of ``task.label_names``; every
    split has its file (this kind carves nothing)."""
    names = [str(name) for name in request.label_names or TOPICS]
    splits = {}
    for split, path in request.files.items():
        if path is None:
            raise ValueError(f"task.{split}_file is required for problem multi_label")
        rows = read_table(path)
        require_columns(rows, [request.text_fields[0], request.label_field], path)
        labels = [str(row[request.label_field]).split("|") for row in rows]
        for number, topics in enumerate(labels, start=1):
            if not set(topics) <= set(names):
                raise ValueError(f"{path}, row {number}: unknown topic in {topics}")
        splits[split] = Split(
            texts=[str(row[request.text_fields[0]]) for row in rows],
            labels=[sum(2 ** names.index(topic) for topic in set(topics)) for topics in labels],
        )
    return TaskData(name=request.name, **splits, label_names=names, problem="multi_label")


MULTI_LABEL = register_kind(
    TaskKind(
        name="multi_label",
        split_type=Split,
        subsample=_subsample,
        head="sequence_classification",
        problem_type="multi_label_classification",
        check_metrics=_check_metrics,
        datamodule=lambda task, tokenizer, task_cfg, *, token_cache_dir=None, **common: (
            MultiLabelDataModule(task, tokenizer, **common)
        ),
        module=lambda model, task, datamodule, settings, **common: MultiLabelModule(
            model, num_labels=task.num_labels, **common
        ),
        metrics=(METRIC,),
        labels_named=True,
        read_files=read_labelled_topics,
    )
)


def _split(n: int, seed: int) -> Split:
    rng = random.Random(seed)
    texts, labels = [], []
    for i in range(n):
        topics = [t for t in TOPICS if rng.random() < 0.45] or [rng.choice(TOPICS)]
        words = [rng.choice(WORDS[t]) for t in topics for _ in range(2)] + rng.sample(FILLER, 3)
        rng.shuffle(words)
        texts.append(" ".join(words) + f" {seed}-{i}")
        labels.append(sum(2 ** TOPICS.index(t) for t in topics))
    return Split(texts=texts, labels=labels)


def load_topics(name: str = "topics", **_) -> TaskData:
    """The task (``task.loader._target_``): texts naming one to three topics."""
    return TaskData(
        name=name,
        train=_split(96, 0),
        validation=_split(48, 1),
        test=_split(48, 2),
        label_names=list(TOPICS),
        problem="multi_label",
    )


# The task file: what conf/task/<name>.yaml would hold, given as overrides of an existing one.
TASK = [
    "task=rotten_tomatoes",
    "task.name=topics",
    "task.loader._target_=tests.test_kind_multi_label.load_topics",
    f"task.metrics=[{METRIC}]",
]
# The same kind from the user's files: task=from_files, with the loader named through this
# module (which imports ``load_from_files``), so the config check imports it and the kind
# registers before the files are read.
FILES_TASK = [
    "task=from_files",
    "task.problem=multi_label",
    "task.label_field=topics",
    f"task.label_names=[{','.join(TOPICS)}]",
    f"task.metrics=[{METRIC}]",
    f"task.loader._target_={__name__}.{load_from_files.__name__}",
]


def test_micro_f1_is_scikit_learns():
    rng = torch.Generator().manual_seed(0)
    target = torch.randint(0, 8, (50,), generator=rng)
    preds = (torch.randn(50, 3, generator=rng) > 0).long()
    metric = MicroF1(num_labels=3, average="micro")
    metric.update(preds, multi_hot(target, 3))
    expected = f1_score(multi_hot(target, 3).numpy(), preds.numpy(), average="micro")
    assert metric.compute().item() == pytest.approx(expected, abs=1e-6)
    assert multi_hot(torch.tensor([5]), 3).tolist() == [[1.0, 0.0, 1.0]]  # sports and weather


def test_the_kind_brings_its_label_rule_metric_and_direction():
    assert kind_of("multi_label").metric_mode(METRIC) == "max"
    task = load_topics()
    assert task.num_labels == 3 and set(task.train.labels) <= set(range(1, 8))


def test_a_multi_label_kind_trains_end_to_end_and_is_tabled(tmp_path, capsys):
    from gelora.table.cli import main as gelora_table

    sweep = tmp_path / "sweep"
    for method in ("lora", "gelora"):
        for seed in (0, 1):
            job = sweep / f"{method}_seed{seed}"
            results = run_in_process(job, *TINY, *TASK, f"method={method}", f"seed={seed}")
            assert results["status"] == "completed", results.get("error")
            assert results["metric"] == METRIC and results["metric_modes"] == {METRIC: "max"}
            assert 0 <= results["metrics"][f"test/{METRIC}"] <= 1
            (job / ".hydra").mkdir(exist_ok=True)  # what a sweep's job folder holds
            OmegaConf.save(OmegaConf.create(results["config"]), job / ".hydra" / "config.yaml")
            choices = {"hydra": {"runtime": {"choices": {"method": method}}}}
            OmegaConf.save(OmegaConf.create(choices), job / ".hydra" / "hydra.yaml")
    gelora_table([str(sweep), "--versus", "lora", "--no-plots"])
    table = (sweep / "table.md").read_text()
    assert "Paired differences versus lora" in table  # the direction came from the records
    assert "No paired differences" not in table
    assert "gelora" in table and Path(sweep / "paired.csv").is_file()


def test_the_config_check_registers_the_kind_without_any_import_before_it():
    # a new process that imports nothing of this module: check_config imports the task's
    # loader module, where the kind registers, and then accepts the kind's metric
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from tests.helpers import compose_train\n"
        "from gelora.config.checks import check_config\n"
        "assert 'tests.test_kind_multi_label' not in sys.modules\n"
        f"check_config(compose_train(*{TASK!r}))\n"
        "assert 'tests.test_kind_multi_label' in sys.modules\n"
    )
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=root, timeout=120
    )
    assert done.returncode == 0, done.stderr[-800:]


def _write_topics(folder: Path) -> list[str]:
    """Three CSV files of the kind's rows, and the overrides that name them."""
    overrides = []
    for split, seed in (("train", 0), ("validation", 1), ("test", 2)):
        rows = _split(12, seed)
        lines = ["text,topics"] + [
            f"{text},{'|'.join(t for k, t in enumerate(TOPICS) if label >> k & 1)}"
            for text, label in zip(rows.texts, rows.labels, strict=True)
        ]
        path = folder / f"{split}.csv"
        path.write_text("\n".join(lines) + "\n")
        overrides.append(f"task.{split}_file={path}")
    return overrides


def test_a_kind_of_its_own_reads_its_files_through_from_files(tmp_path):
    # issue 45, item 3: the kind's read_files, reached through task=from_files, with no edit of
    # gelora's from_files (which holds no list of kinds)
    from gelora.config.checks import check_config
    from gelora.stages.task import load_task

    (tmp_path / "odd.csv").write_text("text,topics\nrain and a goal,sports|weather\n")
    odd = str(tmp_path / "odd.csv")
    request = {"train_file": odd, "problem": "multi_label", "label_field": "topics"}
    read = load_from_files(**request, validation_file=odd, test_file=odd)
    assert read.test.labels == [0b101]  # sports (bit 0) and weather (bit 2)
    with pytest.raises(ValueError, match=r"task\.validation_file is required for problem multi"):
        load_from_files(**request)
    cfg = compose_train(*TINY, *FILES_TASK, *_write_topics(tmp_path), "paths.output_dir=.")
    check_config(cfg)
    task = load_task(cfg.task)
    assert task.problem == "multi_label" and task.label_names == list(TOPICS)
    assert task.test.labels == _split(12, 2).labels and task.train.texts == _split(12, 0).texts


def test_the_kind_reads_its_files_with_no_import_before_the_config_check(tmp_path):
    import subprocess
    import sys

    overrides = [*TINY, *FILES_TASK, *_write_topics(tmp_path), "paths.output_dir=."]
    code = (
        "import sys\n"
        "from hydra.utils import instantiate\n"
        "from tests.helpers import compose_train\n"
        "from gelora.config.checks import check_config\n"
        "assert 'tests.test_kind_multi_label' not in sys.modules\n"
        f"cfg = compose_train(*{overrides!r})\n"
        "check_config(cfg)\n"
        "assert instantiate(cfg.task.loader).problem == 'multi_label'\n"
    )
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=root, timeout=120
    )
    assert done.returncode == 0, done.stderr[-800:]


def test_an_unknown_problem_is_one_line_naming_the_key_and_the_kinds(tmp_path):
    (tmp_path / "t.csv").write_text("text,label\na,x\nb,y\n")
    with pytest.raises(ValueError) as raised:
        load_from_files(train_file=str(tmp_path / "t.csv"), problem="ranking")
    message = str(raised.value)
    assert message.startswith("task.problem must be one of classification, regression, ")
    assert "multi_label" in message and message.endswith("got 'ranking'")
