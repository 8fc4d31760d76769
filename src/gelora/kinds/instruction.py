"""Instruction tuning: chat-formatted examples, the causal LM's own head (loss on response
tokens only; lower is better), IFBench and MT-Bench on the tested model."""

from __future__ import annotations

from gelora.data.from_files import read_instruction
from gelora.data.instruction_datamodule import InstructionDataModule, chat_prompt
from gelora.data.instruction_split import InstructionSplit, subsample_examples
from gelora.kinds.base import TaskKind, register_kind
from gelora.training.instruct_metrics import LOWER_IS_BETTER
from gelora.training.instruct_module import LoRACausalLMModule
from gelora.training.metrics import check_metrics


def instruction_datamodule(task, tokenizer, task_cfg, *, token_cache_dir=None, **common):
    return InstructionDataModule(task, tokenizer, **common)


def causal_lm_module(model, task, datamodule, settings, **common):
    return LoRACausalLMModule(model, **common)


def chat_prompts(tokenizer, texts: list[str]) -> list[str]:
    """The prompts as the model reads them: its chat template."""
    return [chat_prompt(tokenizer, text) for text in texts]


def run_benchmarks_after_test(settings, model, backbone, method: str, out_dir):
    """IFBench and MT-Bench answers of the tested model (``task.ifbench_prompts``,
    ``task.mt_bench_questions``), files in the run directory."""
    from gelora.evaluation.benchmarks import run_benchmarks
    from gelora.evaluation.generation import GenerationSettings

    wanted = settings.benchmarks
    generation = GenerationSettings(
        max_new_tokens=wanted.max_new_tokens or GenerationSettings.max_new_tokens,
        batch_size=wanted.batch_size or GenerationSettings.batch_size,
    )
    untrained = settings.trainer.get("limit_train_batches") == 0
    variant = "untrained" if untrained else method
    return run_benchmarks(
        model,
        backbone.tokenizer,
        out_dir,
        generation,
        ifbench_prompts=wanted.ifbench_prompts,
        mt_bench_questions=wanted.mt_bench_questions,
        model_id=f"{wanted.run_name}-{variant}-seed{wanted.seed}",
        progress=bool(settings.trainer.get("enable_progress_bar", True) is not False),
    )


INSTRUCTION = register_kind(
    TaskKind(
        name="instruction",
        split_type=InstructionSplit,
        subsample=subsample_examples,  # plainly
        head="causal_lm",
        problem_type=None,  # the causal LM's next-token loss, on response tokens
        check_metrics=lambda names, num_labels: check_metrics(names, "instruction", num_labels),
        datamodule=instruction_datamodule,
        module=causal_lm_module,
        prompt_texts=chat_prompts,
        lower_is_better=LOWER_IS_BETTER,
        after_test=run_benchmarks_after_test,
        read_files=read_instruction,  # Alpaca rows: instruction, input, output
    )
)
