"""``TaskKind``: what a task kind (``task.problem``) brings to a run, and the registry of kinds.

The stages never test ``task.problem``: they look its kind up (``kind_of``) and call what the
kind owns: its split type and how a split is subsampled (``load_task``), its metric check and
direction, its head (``load_backbone``), its ID-sample texts (``estimate_profile``), its
datamodule and LightningModule, and its after-test step (``fit_and_test``); ``task=from_files``
reads a kind's files through it (``gelora.kinds.from_files``). A new kind is a
``TaskKind`` passed to ``register_kind`` (the built-in ones: ``classification.py``,
``extractive_qa.py``, ``instruction.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gelora.data.task_data import register_split_type
from gelora.training.metrics import register_kind_metrics


@dataclass(frozen=True)
class TaskKind:
    """One task kind.

    Attributes:
        name: the ``task.problem`` (``TaskData.problem``) it serves.
        split_type: the type of its splits (``TaskData`` refuses others).
        subsample: ``(split, max_samples, *, seed) -> split``: at most ``max_samples`` rows
            drawn with ``seed`` (all of them if there are fewer).
        head: a key of ``gelora.models.HEADS`` (the model class loaded).
        problem_type: Hugging Face's ``config.problem_type`` (which loss the forward computes),
            ``None`` for a head with its own loss.
        check_metrics: ``(names, num_labels)``, raising ``ValueError`` naming a metric that does
            not fit the kind.
        datamodule: ``(task, tokenizer, task_cfg, *, token_cache_dir, **common) -> datamodule``;
            ``common``: ``max_length``, ``batch_size``, ``eval_batch_size``, ``seed``,
            ``group_by_length``.
        module: ``(model, task, datamodule, settings, **common) -> LightningModule``; ``common``:
            what every ``LoRAClassifierModule`` takes (plan, metrics, optimiser, ``adapt``).
        prompt_texts: ``(tokenizer, texts) -> texts``: the ID sample's texts as the model reads
            them; ``None``: as drawn.
        lower_is_better: its metrics monitored with ``mode="min"`` (a loss); written into
            results.json as ``metric_modes``, which is how ``gelora-table`` reads a direction.
        metrics: metric names the kind computes itself (its module's ``make_metrics``), which
            the config check accepts beside the built-in ones (``known_metric_names``).
        labels_named: its tasks name their classes (``TaskData.label_names`` given exactly
            then), as classification's do.
        after_test: ``(settings, model, backbone, method_name, out_dir)`` run on rank 0 with the
            tested weights; returns an object with ``scores`` (added to the metrics as
            ``test/<name>``), ``seconds``, ``files`` and ``unscored``; ``None``: no such step.
        read_files: ``(request) -> TaskData``: its tasks read from the user's files
            (``task=from_files``; ``request`` a ``gelora.data.from_files.FileRequest``), raising
            ``ValueError`` in one line naming the key or file; ``None``: the kind reads no files.
    """

    name: str
    split_type: type
    subsample: Callable[..., Any]
    head: str
    problem_type: str | None
    check_metrics: Callable[[list[str], int], None]
    datamodule: Callable[..., Any]
    module: Callable[..., Any]
    prompt_texts: Callable[[Any, list[str]], list[str]] | None = None
    lower_is_better: frozenset[str] = frozenset()
    after_test: Callable[..., Any] | None = None
    metrics: tuple[str, ...] = ()
    labels_named: bool = False
    read_files: Callable[[Any], Any] | None = None

    def metric_mode(self, name: str) -> str:
        """``min`` for a metric where lower is better (a loss), else ``max``: the checkpoint's and
        early stopping's ``mode``."""
        return "min" if name in self.lower_is_better else "max"

    def id_texts(self, tokenizer, texts: list[str]) -> list[str]:
        """The ID sample's texts as the model reads them."""
        return list(texts) if self.prompt_texts is None else self.prompt_texts(tokenizer, texts)


_KINDS: dict[str, TaskKind] = {}


def register_kind(kind: TaskKind) -> TaskKind:
    """Make ``kind`` the one for ``task.problem == kind.name`` (its split type, label rule and
    metric names with it). A kind registers when its module is imported; one defined beside its
    task's loader is imported by the config check (``check_config``), before anything else."""
    register_split_type(kind.name, kind.split_type, labels_named=kind.labels_named)
    register_kind_metrics(kind.name, kind.metrics)
    _KINDS[kind.name] = kind
    return kind


def kind_of(problem: str) -> TaskKind:
    """The registered kind of ``task.problem``.

    Raises:
        KeyError: no kind of that name is registered.
    """
    try:
        return _KINDS[problem]
    except KeyError:
        raise KeyError(f"no task kind {problem!r}; registered: {', '.join(_KINDS)}") from None


def kinds() -> dict[str, TaskKind]:
    """Every registered kind, by name."""
    return dict(_KINDS)
