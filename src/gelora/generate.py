"""``gelora-generate``: answers of an instruction-tuned run (or of the untuned base model) to
MT-Bench, in FastChat's ``model_answer`` JSONL, and optionally its IFBench scores.

gelora-generate RUN_DIR                          # the run's adapter on its base model
gelora-generate --base smollm2_135m              # the untuned model of conf/model/smollm2_135m
gelora-generate RUN_DIR --ifbench-prompts 294    # also IFBench, all of it
gelora-generate RUN_DIR --max-new-tokens 1024 --out answers/tuned.jsonl

A run directory is read through its ``results.json``; its adapter (``adapter/``, peft's format,
the best-validation weights, safetensors only) is put into the base model with
``gelora.lora.export.load_adapter``. A run without an adapter (``head_only``) is refused.

A run folder may come from someone else, so its record never chooses code or weights. The base
model's config is gelora's own catalogue entry, ``conf/model/<name>.yaml``, for the model the
record names; the record's copy of that config must equal it (keys an older record lacks
aside), else the run is refused in one line: a record that sets ``trust_remote_code``, a
``pretrained`` folder (inside the run folder or anywhere) or another asset does not get them.
``--model NAME_OR_YAML`` chooses the config instead (the user's decision; the record is then not
compared). transformers runs a model's own Python (``trust_remote_code``) only with
``--trust-remote-code`` on the command line, never because a record or a config file says so.
A catalogue hub id that is a local path where the command runs (transformers would load that
folder instead of the hub's model) is refused too.

Every argument is checked before anything is loaded; a wrong one is one line naming the flag.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from pathlib import Path
from typing import Any

from gelora.record import read_results

log = logging.getLogger("gelora.generate")

MODEL_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")  # a catalogue entry, never a path
N_MT_BENCH = 80  # gelora.evaluation.mt_bench.N_QUESTIONS (not imported: it loads transformers)
N_IFBENCH = 294  # gelora.evaluation.ifbench.N_PROMPTS


class Refused(ValueError):
    """A run folder, model config or argument gelora-generate will not use (one line: why)."""


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
    parser.add_argument(
        "--model",
        metavar="NAME_OR_YAML",
        help="the base model's config for a run: a conf/model/ name or a model YAML file "
        "(default: the catalogue's entry for the model the run's record names, which must equal "
        "the record's copy)",
    )
    parser.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="let transformers run the model's own Python code (never taken from a record or "
        "a config file)",
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


def catalogue_file(name: str) -> Path | None:
    """``conf/model/<name>.yaml`` of gelora's own catalogue, or ``None`` if ``name`` is not one
    of its entries (a path, ``..``, or no such file)."""
    from gelora.train import config_dir

    if not MODEL_NAME.fullmatch(name) or name.startswith(".."):
        return None
    path = Path(config_dir()) / "model" / f"{name}.yaml"
    return path if path.is_file() else None


def read_model_config(path: Path) -> dict[str, Any]:
    """A model YAML with the schema's defaults filled in (as a run's resolved config holds it).

    Raises:
        Refused: not a model config.
    """
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from gelora.config.schema import ModelSchema

    try:
        merged = OmegaConf.merge(OmegaConf.structured(ModelSchema), OmegaConf.load(path))
        return OmegaConf.to_container(merged, resolve=True, throw_on_missing=True)
    except (OmegaConfBaseException, OSError, ValueError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise Refused(f"{path} is not a model config ({first})") from error


def _with_remote_code(config: dict[str, Any], source: str, allowed: bool) -> dict[str, Any]:
    """``config`` with ``trust_remote_code`` set by the command line alone."""
    if config.get("trust_remote_code") and not allowed:
        raise Refused(
            f"{source} sets trust_remote_code: true; gelora-generate runs a model's own code only "
            "with --trust-remote-code"
        )
    return {**config, "trust_remote_code": allowed}


def _no_local_shadow(config: dict[str, Any], shown: str) -> None:
    """Refuse a catalogue hub id that is a local path where the command runs."""
    pretrained = config.get("pretrained")
    if pretrained and Path(str(pretrained)).expanduser().exists():
        raise Refused(
            f"{shown}'s pretrained {pretrained!r} is a local path here, which transformers would "
            "load instead of the hub's model; run from another folder or pass --model"
        )


def user_model_config(model: str, trust_remote_code: bool = False) -> tuple[dict[str, Any], str]:
    """The config the user named (``--base``, ``--model``): a catalogue entry or a YAML file of
    their own (whose ``pretrained`` is theirs to choose), and where it came from."""
    path = catalogue_file(model)
    if path is not None:
        config = read_model_config(path)
        _no_local_shadow(config, f"conf/model/{path.name}")
    else:
        path = Path(model)
        if not (path.suffix in (".yaml", ".yml") and path.is_file()):
            raise Refused(f"--model: {model} is neither a conf/model/ name nor a model YAML file")
        config = read_model_config(path)
    return _with_remote_code(config, str(path), trust_remote_code), str(path)


def run_model_config(
    results: dict[str, Any],
    run_dir: Path,
    *,
    model: str | None = None,
    trust_remote_code: bool = False,
) -> tuple[dict[str, Any], str]:
    """The base model's config for a run, and where it came from: ``model`` (the user's
    ``--model``) if given, else the catalogue's entry for the model the record names, which the
    record's own copy must equal.

    Raises:
        Refused: the record names no catalogue model, its model config differs from the
            catalogue's, the config asks for remote code without ``trust_remote_code``, or a
            catalogue hub id is a local path here.
    """
    if model is not None:
        return user_model_config(model, trust_remote_code)
    recorded = (results.get("config") or {}).get("model") or {}
    if not isinstance(recorded, dict):
        raise Refused(f"{run_dir}/results.json holds no model config")
    name = recorded.get("name", results.get("model"))
    path = catalogue_file(name) if isinstance(name, str) else None
    if path is None:
        raise Refused(
            f"{run_dir}/results.json names model {name!r}, not a model of gelora's catalogue "
            "(conf/model/); pass --model NAME_OR_YAML to choose the model yourself"
        )
    config = read_model_config(path)
    shown = f"conf/model/{path.name}"
    differs = sorted(k for k in config if k in recorded and recorded[k] != config[k])
    if differs:
        raise Refused(
            f"{run_dir}/results.json's model config differs from {shown} in {', '.join(differs)} "
            "(a record does not choose code or weights); pass --model NAME_OR_YAML to choose the "
            "model yourself"
        )
    _no_local_shadow(config, shown)
    return _with_remote_code(config, shown, trust_remote_code), str(path)


def load_base(model_name: str, trust_remote_code: bool = False):
    """The untuned causal LM of ``conf/model/<model_name>.yaml`` and its tokenizer."""
    from gelora.models import ModelSpec, load_classifier

    model_cfg, _ = user_model_config(model_name, trust_remote_code)
    spec = ModelSpec.from_config(model_cfg, num_labels=0, head="causal_lm")
    model, tokenizer = load_classifier(spec)
    return model, tokenizer, model_cfg


def read_run(run_dir: Path) -> dict[str, Any]:
    """results.json's content, if ``run_dir`` is an instruction run with an adapter.

    Raises:
        FileNotFoundError: no results.json or no adapter in ``run_dir``.
        ValueError: the run is not of an instruction task.
    """
    results_file = run_dir / "results.json"
    if not results_file.is_file():
        raise FileNotFoundError(f"{run_dir} holds no results.json: not a gelora-train run")
    try:
        results = read_results(results_file)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{results_file} is not JSON ({error})") from error
    except ValueError:  # JSON, but not an object
        results = {}
    config = results.get("config")
    if not isinstance(config, dict) or not isinstance(config.get("task"), dict):
        raise ValueError(f"{results_file} holds no run record with its config")
    if (config["task"].get("metrics") or [None])[0] != "response_loss":
        raise ValueError(f"{run_dir} is a {results.get('task')} run, not instruction tuning")
    if not (run_dir / "adapter" / "adapter_config.json").is_file():
        raise FileNotFoundError(f"{run_dir} has no adapter/ to load")
    return results


def load_run(run_dir: Path, model_cfg: dict[str, Any]):
    """A run's base model (``model_cfg``: ``run_model_config``'s) with its trained adapter and
    its tokenizer."""
    from gelora.lora.export import load_adapter
    from gelora.models import ModelSpec, load_classifier

    spec = ModelSpec.from_config(model_cfg, num_labels=0, head="causal_lm")
    model, tokenizer = load_classifier(spec)
    load_adapter(model, run_dir / "adapter", shared_inputs=model_cfg.get("shared_inputs") or ())
    return model, tokenizer


def check_args(args: argparse.Namespace) -> None:
    """Every argument, before anything loads.

    Raises:
        Refused: the first wrong one, named.
    """
    for flag, value in (
        ("--max-new-tokens", args.max_new_tokens),
        ("--batch-size", args.batch_size),
        ("--threads", args.threads),
    ):
        if value is not None and value < 1:
            raise Refused(f"{flag} must be >= 1, got {value}")
    for flag, value, most in (
        ("--questions", args.questions, N_MT_BENCH),
        ("--ifbench-prompts", args.ifbench_prompts, N_IFBENCH),
    ):
        if value is not None and not 0 <= value <= most:
            raise Refused(f"{flag} must be 0 to {most}, got {value}")
    if args.questions == 0 and args.ifbench_prompts == 0:
        raise Refused("--questions 0 and --ifbench-prompts 0: nothing to do")
    if args.base is not None:
        if args.model is not None:
            raise Refused("--model goes with a run directory; --base names the model itself")
        if catalogue_file(args.base) is None:
            raise Refused(f"--base: no model config conf/model/{args.base}.yaml")
    else:
        if not args.run_dir.is_dir():
            raise Refused(f"no such run directory: {args.run_dir}")
        if args.model is not None and catalogue_file(args.model) is None:
            path = Path(args.model)
            if not (path.suffix in (".yaml", ".yml") and path.is_file()):
                raise Refused(
                    f"--model: {args.model} is neither a conf/model/ name nor a model YAML file"
                )
    if args.out is not None:
        if args.out.is_dir():
            raise Refused(f"--out: {args.out} is a directory; name the answer file")
        parent = args.out.parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if not parent.is_dir():
            raise Refused(f"--out: {parent} is not a directory")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        check_args(args)
        if args.base is None:
            results = read_run(args.run_dir)
            model_cfg, model_source = run_model_config(
                results, args.run_dir, model=args.model, trust_remote_code=args.trust_remote_code
            )
        else:
            user_model_config(args.base, args.trust_remote_code)
    except (FileNotFoundError, ValueError) as error:  # Refused is a ValueError
        print(f"gelora-generate: error: {error}", file=sys.stderr)
        return 2
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
            model, tokenizer, model_cfg = load_base(args.base, args.trust_remote_code)
            model_id = args.model_id or f"{model_cfg['name']}-base"
            default_dir = Path("outputs") / "generate" / model_id
        else:
            log.info("base model: %s", model_source)
            model, tokenizer = load_run(args.run_dir, model_cfg)
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
