"""Extractive question answering as a typed split: questions over contexts, with gold answer spans.

A ``QASplit`` holds SQuAD's rows (Rajpurkar et al. 2016, "SQuAD: 100,000+ Questions for Machine
Comprehension of Text"): an id, the article's title, the question, the context paragraph and one
or more gold answers, each a substring of the context at a character offset. It offers what the
run's stages ask of a classification ``Split`` (``texts`` are the questions, ``text_pairs`` the
contexts, ``labels`` the answers), so cleaning, the ID sample (hidden states of (question,
context) pairs) and the record's row fingerprints work unchanged.

Rows are put in a canonical order (sorted by id) before any seeded draw, and the draws use
scikit-learn's seeded splits, as ``gelora.data.task_data`` does for classification, so a split
is the same rows on every machine.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

from sklearn.model_selection import train_test_split

from gelora.data.draws import subsample_in_canonical_order


@dataclass(frozen=True)
class Answer:
    """A gold answer: ``text`` found at character ``start`` of its context."""

    text: str
    start: int

    @property
    def end(self) -> int:
        """One past the answer's last character."""
        return self.start + len(self.text)


@dataclass(frozen=True)
class QASplit:
    """One split of an extractive QA task, one row per question.

    Attributes:
        answers: per question, the gold answers (SQuAD v1.1 train has one, dev three or more
            from different annotators); training uses the first, scoring takes the best.
    """

    ids: list[str]
    titles: list[str]
    questions: list[str]
    contexts: list[str]
    answers: list[tuple[Answer, ...]]

    def __post_init__(self) -> None:
        n = len(self.ids)
        columns = (self.titles, self.questions, self.contexts, self.answers)
        if any(len(column) != n for column in columns):
            raise ValueError("ids, titles, questions, contexts and answers differ in length")
        for row, (context, answers) in enumerate(zip(self.contexts, self.answers, strict=True)):
            if not answers:
                raise ValueError(f"question {self.ids[row]!r} has no answer")
            for answer in answers:
                if context[answer.start : answer.end] != answer.text:
                    raise ValueError(
                        f"question {self.ids[row]!r}: answer {answer.text!r} is not at character "
                        f"{answer.start} of its context"
                    )

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def texts(self) -> list[str]:
        """The questions: the first segment the model reads."""
        return self.questions

    @property
    def text_pairs(self) -> list[str]:
        """The contexts: the second segment."""
        return self.contexts

    @property
    def labels(self) -> list[tuple[Answer, ...]]:
        return self.answers

    def answer_texts(self) -> list[list[str]]:
        return [[a.text for a in answers] for answers in self.answers]

    def subset(self, indices: Sequence[int]) -> QASplit:
        return QASplit(
            ids=[self.ids[i] for i in indices],
            titles=[self.titles[i] for i in indices],
            questions=[self.questions[i] for i in indices],
            contexts=[self.contexts[i] for i in indices],
            answers=[self.answers[i] for i in indices],
        )

    def fingerprint(self) -> str:
        """sha256 of the rows in order, as ``Split.fingerprint``: equal fingerprints, equal rows."""
        answers = [[[a.text, a.start] for a in row] for row in self.answers]
        rows = [self.ids, self.questions, self.contexts, answers]
        return hashlib.sha256(json.dumps(rows, ensure_ascii=False).encode()).hexdigest()

    def inputs(self) -> list[tuple[str, str]]:
        """One hashable input per row: the (question, context) pair the model reads."""
        return list(zip(self.questions, self.contexts, strict=True))


def canonical_order(split: QASplit) -> list[int]:
    """Row indices sorted by question id (ids are unique in SQuAD), then by content."""
    return sorted(
        range(len(split)), key=lambda i: (split.ids[i], split.questions[i], split.contexts[i])
    )


def split_by_title(split: QASplit, held_out: float | int, *, seed: int) -> tuple[QASplit, QASplit]:
    """Seeded ``(rest, held_out)`` split of whole articles, so that no context paragraph (and no
    article) is in both parts: a question's neighbours over the same paragraph would leak its
    answer into validation.

    Args:
        held_out: a fraction in (0, 1) of the articles, or a number of articles.
    """
    titles = sorted(set(split.titles))
    if len(titles) < 2:
        raise ValueError(f"{len(titles)} article(s): cannot hold whole articles out")
    _, held_titles = train_test_split(titles, test_size=held_out, random_state=seed)
    held = set(held_titles)
    order = canonical_order(split)
    rest = [i for i in order if split.titles[i] not in held]
    return split.subset(rest), split.subset([i for i in order if split.titles[i] in held])


def subsample_questions(split: QASplit, max_samples: int | None, *, seed: int) -> QASplit:
    """At most ``max_samples`` questions, drawn with ``seed`` from the canonical order and kept
    in that order; all of them if there are fewer. Questions, not articles, are drawn, so a
    capped split still spans many articles."""
    return subsample_in_canonical_order(
        split, max_samples, seed=seed, canonical_order=canonical_order
    )
