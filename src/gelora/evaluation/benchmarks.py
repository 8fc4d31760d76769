"""The benchmarks an instruction-tuned model is evaluated on after training, in one call shared by
``gelora-train`` (the test stage of an instruction task) and ``gelora-generate``."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from gelora.evaluation.generation import GenerationSettings, generate_answers
from gelora.evaluation.ifbench import (
    IFBENCH_FILE,
    load_checkers,
    read_ifbench,
    score_prompt,
    summarize,
    unscored_counts,
    write_verdicts,
)
from gelora.evaluation.mt_bench import (
    MT_BENCH_FILE,
    answer_questions,
    model_answer_rows,
    read_questions,
    write_model_answers,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BenchmarkResult:
    """Scores (IFBench's, by name without a prefix), the files written and the seconds taken."""

    scores: dict[str, float] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    unscored: dict[str, int] = field(default_factory=dict)


def run_benchmarks(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    out_dir: Path,
    settings: GenerationSettings,
    *,
    ifbench_prompts: int | None,
    mt_bench_questions: int | None,
    model_id: str,
    progress: bool = True,
) -> BenchmarkResult:
    """IFBench on its first ``ifbench_prompts`` prompts (``None``: all 294, 0: skipped) and
    MT-Bench answers to its first ``mt_bench_questions`` questions (``None``: all 80, 0:
    skipped), written into ``out_dir``."""
    scores: dict[str, float] = {}
    files: dict[str, str] = {}
    seconds: dict[str, float] = {}
    unscored: dict[str, int] = {}
    if ifbench_prompts != 0:
        started = time.perf_counter()
        checkers = load_checkers()
        prompts = read_ifbench(max_prompts=ifbench_prompts)
        conversations = [[{"role": "user", "content": p.prompt}] for p in prompts]
        responses = generate_answers(
            model, tokenizer, conversations, settings, description="IFBench", progress=progress
        )
        verdicts = [score_prompt(checkers, p, r) for p, r in zip(prompts, responses, strict=True)]
        scores = summarize(verdicts)
        unscored = unscored_counts(verdicts)
        files["ifbench"] = str(write_verdicts(verdicts, out_dir / IFBENCH_FILE))
        seconds["ifbench_s"] = round(time.perf_counter() - started, 3)
        log.info(ifbench_line(scores, unscored, seconds["ifbench_s"]))
    if mt_bench_questions != 0:
        started = time.perf_counter()
        questions = read_questions(max_questions=mt_bench_questions)
        answers = answer_questions(model, tokenizer, questions, settings, progress=progress)
        rows = model_answer_rows(questions, answers, model_id)
        files["mt_bench"] = str(write_model_answers(rows, out_dir / MT_BENCH_FILE))
        seconds["mt_bench_s"] = round(time.perf_counter() - started, 3)
        log.info(
            "MT-Bench: %d questions answered (2 turns, greedy, at most %d new tokens) in %.1f s: "
            "%s (model_id %s)",
            len(rows),
            settings.max_new_tokens,
            seconds["mt_bench_s"],
            files["mt_bench"],
            model_id,
        )
    return BenchmarkResult(scores, files, seconds, unscored)


def ifbench_line(scores: dict[str, float], unscored: dict[str, int], seconds: float) -> str:
    """One line: the four accuracies and what was scored."""
    counts = ", ".join(f"{key} x{n}" for key, n in sorted(unscored.items()))
    left_out = f"; unscored (NLTK data missing): {counts}" if unscored else ""
    return (
        f"IFBench: {int(scores['ifbench_prompts'])} prompts in {seconds:.1f} s; prompt-level "
        f"strict {scores['ifbench_prompt_strict']:.4f} loose {scores['ifbench_prompt_loose']:.4f} "
        f"({int(scores['ifbench_prompts_scored'])} prompts scored), instruction-level strict "
        f"{scores['ifbench_instruction_strict']:.4f} "
        f"loose {scores['ifbench_instruction_loose']:.4f} "
        f"({int(scores['ifbench_instructions'] - scores['ifbench_instructions_unscored'])} of "
        f"{int(scores['ifbench_instructions'])} instructions scored){left_out}"
    )
