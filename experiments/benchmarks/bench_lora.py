"""Benchmark: one training step of our LoRA against peft's, and against a bias-only floor.

    python experiments/benchmarks/bench_lora.py [--rounds 8] [--batch 32] [--length 128]

all-MiniLM-L6-v2 (the packaged asset), a batch of ``--batch`` x ``--length`` tokens, all six
linear maps of every block adapted. A step is forward, backward, ``AdamW.step`` and
``zero_grad`` (for AdaLoRA also ``update_and_allocate``, which its training needs every step).
Every method gets its own copy of the model in this one process, and the methods are timed in
alternation, round after round, so that machine noise hits them all alike; the figure is the
median over rounds. Methods:

- ``floor``: only the bias terms train, so backward still runs through every block down to the
  first one: the least work any adapter that reaches the first block can cost;
- ``ours_uniform``: our LoRA, r = 8 on all six maps (query/key/value share one down-projection);
- ``ours_hetero``: our LoRA with different ranks per block at the same total budget;
- ``peft_lora``: peft's LoRA, r = 8 on the same maps;
- ``peft_adalora``: peft's AdaLoRA, final budget r = 8 (init_r 12) on the same maps.

Writes ``bench_lora.json`` and ``bench_lora.md`` next to this script (or under ``--out``).
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from peft import AdaLoraConfig, LoraConfig, get_peft_model

from gelora.lora import count_parameters, inject_lora, mark_trainable
from gelora.models import ModelSpec, find_target_modules, load_classifier
from gelora.ranks.plan import RankPlan
from gelora.ranks.scaling import Scaling

BLOCKS = "bert.encoder.layer"
TARGETS = [
    "attention.self.query",
    "attention.self.key",
    "attention.self.value",
    "attention.output.dense",
    "intermediate.dense",
    "output.dense",
]
QKV = [TARGETS[:3]]
HETERO_BLOCK_RANKS = [2, 4, 6, 10, 12, 14]  # sums to 6 x 8: the uniform r = 8 budget


def bias_only(model: torch.nn.Module) -> torch.nn.Module:
    model.requires_grad_(False)
    for name, parameter in model.named_parameters():
        if name.endswith(".bias"):
            parameter.requires_grad_(True)
    return model


def ours(model: torch.nn.Module, block_ranks: list[int]) -> torch.nn.Module:
    targets = find_target_modules(model, BLOCKS, TARGETS)
    plan = RankPlan.from_ranks(
        "bench", targets, dict(enumerate(block_ranks)), Scaling("constant", 2.0)
    )
    inject_lora(model, plan, shared_inputs=QKV)
    mark_trainable(model)
    return model


def peft_lora(model: torch.nn.Module) -> torch.nn.Module:
    names = [t.name for t in find_target_modules(model, BLOCKS, TARGETS)]
    return get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=names))


def peft_adalora(model: torch.nn.Module) -> torch.nn.Module:
    names = [t.name for t in find_target_modules(model, BLOCKS, TARGETS)]
    config = AdaLoraConfig(
        init_r=12, target_r=8, lora_alpha=16, target_modules=names, total_step=10_000, tinit=0
    )
    return get_peft_model(model, config)


class Stepper:
    """One method's model, optimiser and step counter."""

    def __init__(self, model: torch.nn.Module, batch: dict, adalora: bool = False):
        self.model = model.train()
        self.batch = batch
        self.adalora = adalora
        self.optimizer = torch.optim.AdamW(
            [p for p in model.parameters() if p.requires_grad], lr=1e-5
        )
        self.steps = 0

    def step(self) -> float:
        start = time.perf_counter()
        loss = self.model(**self.batch).loss
        loss.backward()
        self.optimizer.step()
        if self.adalora:
            self.model.base_model.update_and_allocate(self.steps)
        self.optimizer.zero_grad(set_to_none=True)
        self.steps += 1
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent)
    args = parser.parse_args()

    torch.manual_seed(0)
    base, _ = load_classifier(ModelSpec(asset="all-minilm-l6-v2", pretrained=None, num_labels=2))
    batch = {
        "input_ids": torch.randint(1000, base.config.vocab_size, (args.batch, args.length)),
        "attention_mask": torch.ones(args.batch, args.length, dtype=torch.long),
        "labels": torch.randint(0, 2, (args.batch,)),
    }
    builders: dict[str, Callable[[torch.nn.Module], torch.nn.Module]] = {
        "floor": bias_only,
        "ours_uniform": lambda m: ours(m, [8] * 6),
        "ours_hetero": lambda m: ours(m, HETERO_BLOCK_RANKS),
        "peft_lora": peft_lora,
        "peft_adalora": peft_adalora,
    }
    steppers = {
        name: Stepper(build(copy.deepcopy(base)), batch, adalora=name == "peft_adalora")
        for name, build in builders.items()
    }
    trainable = {
        name: count_parameters(s.model, trainable_only=True) for name, s in steppers.items()
    }
    times: dict[str, list[float]] = {name: [] for name in steppers}
    for round_index in range(args.warmup + args.rounds):
        for name, stepper in steppers.items():
            seconds = stepper.step()
            if round_index >= args.warmup:
                times[name].append(seconds)
        print(f"round {round_index + 1}/{args.warmup + args.rounds}", flush=True)

    median = {name: statistics.median(ts) for name, ts in times.items()}
    result = {
        "setup": {
            "model": "all-MiniLM-L6-v2",
            "batch": args.batch,
            "length": args.length,
            "rounds": args.rounds,
            "warmup": args.warmup,
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "machine": platform.processor() or platform.machine(),
        },
        "median_step_s": median,
        "trainable_params": trainable,
        "ratios": {
            "ours_uniform / peft_lora": median["ours_uniform"] / median["peft_lora"],
            "ours_uniform / floor": median["ours_uniform"] / median["floor"],
            "ours_hetero / ours_uniform": median["ours_hetero"] / median["ours_uniform"],
            "ours_hetero / floor": median["ours_hetero"] / median["floor"],
            "peft_lora / floor": median["peft_lora"] / median["floor"],
            "peft_adalora / floor": median["peft_adalora"] / median["floor"],
        },
        "all_step_s": times,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_lora.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        f"# One training step, all-MiniLM-L6-v2, batch {args.batch} x {args.length} tokens",
        "",
        f"Median of {args.rounds} alternating rounds after {args.warmup} warm-up rounds, "
        f"{torch.get_num_threads()} threads, torch {torch.__version__}.",
        "",
        "| method | trainable params | median step (s) | / floor |",
        "|---|---:|---:|---:|",
    ]
    for name in steppers:
        lines.append(
            f"| {name} | {trainable[name]:,} | {median[name]:.3f} | "
            f"{median[name] / median['floor']:.3f} |"
        )
    lines += ["", "| ratio | value |", "|---|---:|"]
    lines += [f"| {key} | {value:.3f} |" for key, value in result["ratios"].items()]
    (args.out / "bench_lora.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
