"""``gelora-plan``'s command line: its own flags read into one frozen ``PlanRequest`` before
Hydra sees the rest, then the Hydra app (the same config groups and keys as ``gelora-train``).

gelora-plan budget.rank=2                              # the plan as a peft LoraConfig
gelora-plan budget.rank=2 --compare pooling            # a plan per pooling, side by side
gelora-plan budget.rank=2 --serving-report --emit axolotl cfg.yaml

Only Hydra, the config schemas and gelora-train's command-line checks are imported here:
``--help`` stays fast; torch and the stages are imported when a plan is made.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import hydra
from omegaconf import DictConfig

from gelora.errors import AssetError, ConfigError
from gelora.plan.compare import Comparison, parse_comparison
from gelora.plan.emit import PlanOptions, parse_emit
from gelora.train import (
    config_dir,
    help_text,
    refuse_unparsable_overrides,
    refuse_unusable_output,
    renamed_group_overrides,
)

log = logging.getLogger("gelora.train")  # the logger gelora-plan has always written with

PLAN_RUN_DIR = "hydra.run.dir=outputs/plan/${task.name}/${model.name}/${now:%Y-%m-%d_%H-%M-%S}"
# Hydra names a job (and its log file) after the module of its app; gelora-plan's app moved here
# from gelora.train, and its run folder keeps train.log, as gelora-train's does.
PLAN_JOB_NAME = "hydra.job.name=train"


@dataclass(frozen=True)
class PlanRequest:
    """What ``gelora-plan``'s own flags ask for: ``--compare`` (plans side by side), or one plan
    with ``--serving-report`` and ``--emit``."""

    comparisons: tuple[Comparison, ...] = ()
    options: PlanOptions = field(default_factory=PlanOptions)


def take_comparisons(arguments: list[str]) -> tuple[list[str], list[Comparison]]:
    """``--compare SPEC`` (repeatable) taken out of ``arguments`` before Hydra reads them.

    Raises:
        ConfigError: ``--compare`` without a value, or a value ``parse_comparison`` refuses.
    """
    rest, comparisons = [], []
    items = iter(arguments)
    for item in items:
        if item == "--compare" or item.startswith("--compare="):
            spec = item.partition("=")[2] if "=" in item else next(items, None)
            if not spec:
                raise ConfigError("--compare needs a value: a preset (pooling, seed, gap, "
                                  "remainder) or key=value1,value2")  # fmt: skip
            comparisons.append(parse_comparison(spec))
        else:
            rest.append(item)
    return rest, comparisons


def take_plan_options(arguments: list[str]) -> tuple[list[str], PlanOptions]:
    """``--serving-report`` and ``--emit KIND DEST`` (repeatable) taken out of ``arguments``
    before Hydra reads them, checked before any model loads.

    Raises:
        ConfigError: ``--emit`` without a kind and destination, or ones ``parse_emit`` refuses.
    """
    rest, emits, report = [], [], False
    items = iter(arguments)
    for item in items:
        if item == "--serving-report":
            report = True
        elif item == "--emit" or item.startswith("--emit="):
            kind = item.partition("=")[2] if "=" in item else next(items, None)
            emits.append(parse_emit(kind, next(items, None)))
        else:
            rest.append(item)
    return rest, PlanOptions(serving_report=report, emits=tuple(emits))


def read_request(arguments: list[str]) -> tuple[list[str], PlanRequest]:
    """gelora-plan's own flags as a ``PlanRequest``, and the arguments left for Hydra.

    Raises:
        ConfigError: a bad flag, or ``--emit``/``--serving-report`` beside ``--compare``.
    """
    arguments, comparisons = take_comparisons(arguments)
    arguments, options = take_plan_options(arguments)
    if comparisons and (options.emits or options.serving_report):
        raise ConfigError("--emit and --serving-report apply to one plan, not to --compare")
    return arguments, PlanRequest(tuple(comparisons), options)


def make_plan_files(cfg: DictConfig, request: PlanRequest) -> None:
    """The plan (or the plans ``--compare`` asks for) and their files in the run folder; a bad
    setting is one line and exit status 2."""
    from gelora.logs import route_library_logs_to_root
    from gelora.plan.lora_config import compare_from_config, plan_from_config
    from gelora.run_folder import save_hydra_files

    route_library_logs_to_root()
    try:
        save_hydra_files(Path(cfg.paths.output_dir), cfg)
        if request.comparisons:
            compare_from_config(cfg, list(request.comparisons), Path(cfg.paths.output_dir))
        else:
            plan_from_config(cfg, Path(cfg.paths.output_dir), request.options)
    except (ConfigError, AssetError) as error:
        log.error("gelora-plan: error: %s", error)
        sys.exit(2)


def plan_app(request: PlanRequest) -> Callable[[], None]:
    """The Hydra app for one request: ``hydra.main`` calls a function of the config alone, so
    the request is closed over here rather than kept in a module."""

    @hydra.main(config_path=config_dir(), config_name="train", version_base="1.3")
    def plan_main(cfg: DictConfig) -> None:
        """``gelora-plan``: the ID profile and rank plan as a peft ``LoraConfig``, no training."""
        make_plan_files(cfg, request)

    return plan_main


def main() -> None:
    """``gelora-plan``: the same config groups as ``gelora-train``; its own run directory;
    ``--compare`` plans once per value of a key and prints the plans side by side;
    ``--serving-report`` prints what the adapter costs where it is served (always saved as
    ``serving_report.json``); ``--emit KIND DEST`` writes the plan for peft's benchmark
    (``peft-bench``) or axolotl (``axolotl``)."""
    try:
        arguments, request = read_request(sys.argv[1:])
    except ConfigError as error:
        print(f"gelora-plan: error: {error}", file=sys.stderr)
        sys.exit(2)
    sys.argv[1:] = arguments = renamed_group_overrides(arguments, "gelora-plan")
    if "--help" in arguments or "-h" in arguments:
        text = help_text([a for a in arguments if a not in ("--help", "-h")])
        print(PLAN_HELP + text[text.index("== Config groups") :])
        return
    refuse_unparsable_overrides(arguments, "gelora-plan")
    if not any(a.startswith("hydra.job.name=") for a in arguments):
        sys.argv.insert(1, PLAN_JOB_NAME)
    if not any(a.startswith("hydra.run.dir=") for a in arguments):
        sys.argv.insert(1, PLAN_RUN_DIR)  # first: after --cfg job, argparse takes no override
    refuse_unusable_output(arguments, "gelora-plan")
    plan_app(request)()


PLAN_HELP = """gelora-plan: GeLoRA's rank plan for peft, without training. Estimates the ID
profile on the task's training inputs, prints it and the plan, draws id_profile.png and
rank_plan.png, and writes lora_config/adapter_config.json (LoraConfig.from_pretrained reads it)
and serving_report.json into outputs/plan/<task>/<model>/<time>/. Same config groups and keys
as gelora-train.

  gelora-plan                                   # the default model and task
  gelora-plan --compare pooling                 # the plan under mean, cls and token pooling
  gelora-plan budget.rank=2 --compare rank_policy.score=gap,waterfill  # any key, any values
  gelora-plan model=minilm_l3 task=snli budget.rank=2
  gelora-plan budget.rank=2 --serving-report    # padded cost on multi-LoRA servers vs uniform
  gelora-plan budget.rank=2 --emit peft-bench DIR  # peft method_comparison experiments (+ control)
  gelora-plan budget.rank=2 --emit axolotl cfg.yaml  # axolotl's lora_* keys with rank patterns

"""


if __name__ == "__main__":
    main()
