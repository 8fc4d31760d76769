"""``gelora-generate``: answers of an instruction-tuned run (or of the untuned base model) to
MT-Bench, in FastChat's ``model_answer`` JSONL, and optionally its IFBench scores.

gelora-generate RUN_DIR                          # the run's adapter on its base model
gelora-generate --base smollm2_135m              # the untuned model of conf/model/smollm2_135m
gelora-generate RUN_DIR --ifbench-prompts 294    # also IFBench, all of it
gelora-generate RUN_DIR --max-new-tokens 1024 --out answers/tuned.jsonl

A run directory is read through its ``results.json`` (the resolved config: which model, where
its weights come from); its adapter (``adapter/``, peft's format, the best-validation weights)
is put into the base model with ``gelora.lora.export.load_adapter``. A run without an adapter
(``head_only``) is refused.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

log = logging.getLogger("gelora.generate")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gelora-generate",
        description="MT-Bench answers (FastChat model_answer JSONL) and optionally IFBench scores "
        "of a gelora run's instruction-tuned model, or of the untuned base model.",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("run_dir", nargs="?", type=Path, help="a gelora-train run directory")
    source.add_argument(
        "--base", metavar="MODEL", help="the untuned model of conf/model/MODEL.yaml instead"
    )
    parser.add_argument("--out", type=Path, help="the answer file (default: beside the run)")
    parser.add_argument("--model-id", help="FastChat's model_id (default: from the run)")
    parser.add_argument("--max-new-tokens", type=int, default=256, help="default: 256")
    parser.add_argument("--batch-size", type=int, default=8, help="default: 8")
    parser.add_argument(
        "--questions", type=int, default=None, help="the first N MT-Bench questions (default: 80)"
    )
    parser.add_argument(
        "--ifbench-prompts",
        type=int,
        default=0,
        help="also score IFBench's first N prompts (default: 0, none)",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    return parser


def load_base(model_name: str):
    """The untuned causal LM of ``conf/model/<model_name>.yaml`` and its tokenizer."""
    from omegaconf import OmegaConf

    from gelora.models import ModelSpec, load_classifier
    from gelora.train import config_dir

    path = Path(config_dir()) / "model" / f"{model_name}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"no model config {path}")
    model_cfg = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    spec = ModelSpec.from_config(model_cfg, num_labels=0, head="causal_lm")
    model, tokenizer = load_classifier(spec)
    return model, tokenizer, model_cfg


def load_run(run_dir: Path):
    """A run's base model with its trained adapter, its tokenizer and results.json's content.

    Raises:
        FileNotFoundError: no results.json or no adapter in ``run_dir``.
        ValueError: the run is not of an instruction task.
    """
    import json

    from gelora.lora.export import load_adapter
    from gelora.models import ModelSpec, load_classifier

    results_file = run_dir / "results.json"
    if not results_file.is_file():
        raise FileNotFoundError(f"{run_dir} holds no results.json: not a gelora-train run")
    results = json.loads(results_file.read_text())
    config = results.get("config") or {}
    if (config.get("task") or {}).get("metrics", [None])[0] != "response_loss":
        raise ValueError(f"{run_dir} is a {results.get('task')} run, not instruction tuning")
    adapter = run_dir / "adapter"
    if not (adapter / "adapter_config.json").is_file():
        raise FileNotFoundError(f"{run_dir} has no adapter/ to load")
    model_cfg = config["model"]
    spec = ModelSpec.from_config(model_cfg, num_labels=0, head="causal_lm")
    model, tokenizer = load_classifier(spec)
    load_adapter(model, adapter, shared_inputs=model_cfg.get("shared_inputs") or ())
    return model, tokenizer, results


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    import torch

    from gelora.evaluation.benchmarks import MT_BENCH_FILE, run_benchmarks
    from gelora.evaluation.generation import GenerationSettings
    from gelora.logs import route_library_logs_to_root

    route_library_logs_to_root()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        if args.base:
            model, tokenizer, model_cfg = load_base(args.base)
            model_id = args.model_id or f"{model_cfg['name']}-base"
            default_dir = Path("outputs") / "generate" / model_id
        else:
            model, tokenizer, results = load_run(args.run_dir)
            variant = results.get("variant") or results.get("method")
            model_id = args.model_id or (
                f"{results['model']}-{results['task']}-{variant}-seed{results['seed']}"
            )
            default_dir = args.run_dir
    except (FileNotFoundError, ValueError) as error:
        print(f"gelora-generate: error: {error}", file=sys.stderr)
        return 2
    out = args.out or default_dir / MT_BENCH_FILE
    out.parent.mkdir(parents=True, exist_ok=True)
    settings = GenerationSettings(max_new_tokens=args.max_new_tokens, batch_size=args.batch_size)
    result = run_benchmarks(
        model,
        tokenizer,
        out.parent,
        settings,
        ifbench_prompts=args.ifbench_prompts,
        mt_bench_questions=args.questions,
        model_id=model_id,
    )
    if "mt_bench" in result.files:
        written = Path(result.files["mt_bench"])
        if written != out:
            written.replace(out)
        print(f"MT-Bench answers: {out}")
    if "ifbench" in result.files:
        print(f"IFBench answers and verdicts: {result.files['ifbench']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
