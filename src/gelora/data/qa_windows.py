"""Contexts as overlapping token windows, answers as token spans, and spans back to answers.

The conventions of Hugging Face's question-answering examples
(``examples/pytorch/question-answering``: ``prepare_train_features``,
``prepare_validation_features`` in ``run_qa.py`` and ``postprocess_qa_predictions`` in
``utils_qa.py``):

- each (question, context) pair is tokenised as the tokenizer's pair input, the context
  truncated (``only_second``; ``only_first`` when the tokenizer pads on the left, which puts
  the context first) and cut into windows of ``max_length`` tokens that overlap by ``stride``
  tokens (``return_overflowing_tokens``);
- a window's target is the token span of the question's first gold answer when the whole answer
  lies inside the window, else the first token ([CLS]) for both start and end;
- a question's answer is the best-scoring span (start logit + end logit) over all its windows,
  among the ``n_best`` highest start and end logits of each window, inside the context, with the
  end not before the start and at most ``max_answer_length`` tokens; its text is the context's
  characters between the span's offsets.

Two additions: questions are cut to ``max_question_length`` tokens first, as BERT's own
``run_squad.py`` does (``max_query_length`` 64), so that every window has room for context; and
an answer whose start falls in a window's last context token maps there, where the examples'
search runs on into the closing separator.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from transformers import PreTrainedTokenizerBase

from gelora.data.qa_data import Answer, QASplit

OUTSIDE = -1  # the offset of a token outside the context (question, special tokens)
CHUNK = 2000  # questions tokenised per call: bounds the tokenizer's Python-side lists


@dataclass(frozen=True)
class Windows:
    """Every window of every question of a split, as the model reads it.

    Attributes:
        features: the tokenizer's model inputs per window (``input_ids``, ``attention_mask``,
            ``token_type_ids`` when it makes them), one int32 array each.
        example_index: the question (row of the split) each window comes from.
        offsets: per window, ``(tokens, 2)`` character spans of its tokens in the context;
            ``OUTSIDE`` for tokens outside the context.
        start_positions, end_positions: the first gold answer's token span in each window, or
            the [CLS] position for both when the answer is not wholly inside it.
    """

    features: dict[str, list[np.ndarray]]
    example_index: np.ndarray
    offsets: list[np.ndarray]
    start_positions: np.ndarray
    end_positions: np.ndarray

    def __len__(self) -> int:
        return len(self.example_index)

    @property
    def lengths(self) -> list[int]:
        return [len(ids) for ids in self.features["input_ids"]]

    def row(self, index: int, *, with_targets: bool, with_index: bool) -> dict:
        """Window ``index`` as a collator row: model inputs, and the answer span (training,
        validation loss) and the window's index (scoring) when asked."""
        row = {key: values[index].tolist() for key, values in self.features.items()}
        if with_targets:
            row["start_positions"] = int(self.start_positions[index])
            row["end_positions"] = int(self.end_positions[index])
        if with_index:
            row["window_index"] = index
        return row


def truncate_questions(
    questions: list[str], tokenizer: PreTrainedTokenizerBase, max_tokens: int
) -> list[str]:
    """Each question without its leading whitespace (some SQuAD questions have a lot of it) and
    cut after its ``max_tokens``-th token."""
    questions = [q.lstrip() for q in questions]
    encoded = tokenizer(questions, add_special_tokens=False, return_offsets_mapping=True)
    return [
        q if len(offsets) <= max_tokens else q[: offsets[max_tokens - 1][1]]
        for q, offsets in zip(questions, encoded["offset_mapping"], strict=True)
    ]


def answer_tokens(offsets: np.ndarray, answer: Answer) -> tuple[int, int] | None:
    """The first and last token of ``answer`` in a window, or ``None`` when the window's context
    does not hold the whole answer. The span is the last token starting at or before the answer's
    first character, to the first token ending at or after its last one."""
    inside = np.flatnonzero(offsets[:, 0] != OUTSIDE)
    if len(inside) == 0:
        return None
    first, last = inside[0], inside[-1]
    if not (offsets[first, 0] <= answer.start and offsets[last, 1] >= answer.end):
        return None
    start = inside[offsets[inside, 0] <= answer.start][-1]
    end = inside[offsets[inside, 1] >= answer.end][0]
    return int(start), int(end)


def cls_position(input_ids: list[int], tokenizer: PreTrainedTokenizerBase) -> int:
    """Where a window without its answer points: [CLS], else the BOS token, else 0."""
    for special in (tokenizer.cls_token_id, tokenizer.bos_token_id):
        if special is not None and special in input_ids:
            return input_ids.index(special)
    return 0


def make_windows(
    split: QASplit,
    tokenizer: PreTrainedTokenizerBase,
    *,
    max_length: int,
    stride: int,
    max_question_length: int,
) -> Windows:
    """Every question's windows with their offsets and answer spans.

    Raises:
        ValueError: ``stride`` leaves no room: a window must hold the question, the special
            tokens and more than ``stride`` context tokens (the tokenizer aborts otherwise).
    """
    questions = truncate_questions(split.questions, tokenizer, max_question_length)
    longest = max(len(ids) for ids in tokenizer(questions, add_special_tokens=False)["input_ids"])
    room = max_length - longest - tokenizer.num_special_tokens_to_add(pair=True)
    if stride >= room:
        raise ValueError(
            f"task.doc_stride={stride} leaves no room: windows of {max_length} tokens hold "
            f"questions of up to {longest} tokens, the special tokens and {room} context tokens; "
            "lower task.doc_stride or task.max_question_length, or raise task.max_length"
        )
    context_first = tokenizer.padding_side != "right"
    context_segment = 0 if context_first else 1
    features: dict[str, list[np.ndarray]] = {}
    example_index, offsets, starts, ends = [], [], [], []
    for chunk in range(0, len(split), CHUNK):
        rows = range(chunk, min(chunk + CHUNK, len(split)))
        chunk_questions = [questions[i] for i in rows]
        chunk_contexts = [split.contexts[i] for i in rows]
        encoded = tokenizer(
            chunk_contexts if context_first else chunk_questions,
            chunk_questions if context_first else chunk_contexts,
            truncation="only_first" if context_first else "only_second",
            max_length=max_length,
            stride=stride,
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
        )
        for window, row in enumerate(encoded["overflow_to_sample_mapping"]):
            for key in encoded:
                if key not in ("offset_mapping", "overflow_to_sample_mapping"):
                    features.setdefault(key, []).append(
                        np.asarray(encoded[key][window], dtype=np.int32)
                    )
            spans = np.asarray(encoded["offset_mapping"][window], dtype=np.int32).reshape(-1, 2)
            segments = encoded.sequence_ids(window)
            spans[[s != context_segment for s in segments]] = OUTSIDE
            example = chunk + row
            span = answer_tokens(spans, split.answers[example][0])
            if span is None:
                cls = cls_position(encoded["input_ids"][window], tokenizer)
                span = (cls, cls)
            example_index.append(example)
            offsets.append(spans)
            starts.append(span[0])
            ends.append(span[1])
    return Windows(
        features=features,
        example_index=np.asarray(example_index, dtype=np.int64),
        offsets=offsets,
        start_positions=np.asarray(starts, dtype=np.int64),
        end_positions=np.asarray(ends, dtype=np.int64),
    )


def best_span(
    offsets: np.ndarray,
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    *,
    n_best: int,
    max_answer_length: int,
) -> tuple[float, int, int] | None:
    """The best span of one window: ``(score, first character, one past the last)``, or
    ``None`` when no pair of its ``n_best`` top start and end tokens makes a valid answer.

    Ties go to the first pair in the examples' order (starts, then ends, by decreasing logit).
    """
    n = len(offsets)
    start_logits, end_logits = start_logits[:n], end_logits[:n]
    starts = np.argsort(start_logits)[-1 : -n_best - 1 : -1]
    ends = np.argsort(end_logits)[-1 : -n_best - 1 : -1]
    length = ends[None, :] - starts[:, None] + 1
    valid = (
        (offsets[starts, 0] != OUTSIDE)[:, None]
        & (offsets[ends, 0] != OUTSIDE)[None, :]
        & (length >= 1)
        & (length <= max_answer_length)
    )
    if not valid.any():
        return None
    scores = np.where(valid, start_logits[starts][:, None] + end_logits[ends][None, :], -np.inf)
    best = int(np.argmax(scores))
    start, end = starts[best // len(ends)], ends[best % len(ends)]
    return float(scores.flat[best]), int(offsets[start, 0]), int(offsets[end, 1])


def best_answers(
    split: QASplit,
    windows: Windows,
    window_index: np.ndarray,
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    *,
    n_best: int = 20,
    max_answer_length: int = 30,
) -> list[str]:
    """Each question's predicted answer: the best span over its windows (``best_span``), as
    the context's text; ``""`` when no window gives a valid span.

    Args:
        window_index: which window each row of the logits belongs to (``Windows`` order).
        start_logits, end_logits: ``(rows, width)``, a window's logits first, then padding.
    """
    best: dict[int, tuple[float, int, int]] = {}
    for row, window in enumerate(window_index.tolist()):
        example = int(windows.example_index[window])
        span = best_span(
            windows.offsets[window],
            start_logits[row],
            end_logits[row],
            n_best=n_best,
            max_answer_length=max_answer_length,
        )
        if span is not None and (example not in best or span[0] > best[example][0]):
            best[example] = span
    return [
        split.contexts[i][best[i][1] : best[i][2]] if i in best else "" for i in range(len(split))
    ]
