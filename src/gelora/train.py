"""``gelora-train``: the Hydra app. Composes ``conf/train.yaml`` and runs ``gelora.pipeline.run``.

gelora-train                                   # GeLoRA on the offline default
gelora-train method=lora rank_policy.rank=4    # a table row (conf/method/); its policy's keys
gelora-train task.max_train_samples=300 trainer.max_steps=20 logger=none
gelora-train -m experiment=table_cpu           # a sweep: every job under multirun_outputs/

In a sweep (``-m``), a job that fails is recorded in its own ``results.json`` (status and
traceback) and the sweep goes on; a job whose directory already holds a completed
``results.json`` of the same settings is skipped, so re-running a sweep with the same
``sweep_id`` resumes it, and a job whose folder holds a run of other settings is refused in one
line, its files untouched (``gelora.run_folder``).

Only Hydra and the config schemas are imported here: ``--help`` and tab completion stay fast.
torch, Lightning and transformers are imported when a run starts.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from gelora.config.schema import register_schemas
from gelora.errors import AssetError, ConfigError
from gelora.sweep_jobs import job_dirname, job_line, wandb_group

log = logging.getLogger("gelora.train")
register_schemas()


OmegaConf.register_new_resolver("gelora_job_dirname", job_dirname, replace=True)
OmegaConf.register_new_resolver("gelora_wandb_group", wandb_group, replace=True)


def config_dir() -> str:
    """The packaged configs (wheel install) or the repository's ``conf/`` (editable install)."""
    packaged = Path(__file__).parent / "conf"
    if packaged.is_dir():
        return str(packaged)
    return str(Path(__file__).resolve().parents[2] / "conf")


def _in_sweep() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def _variant() -> str | None:
    """The ``method`` choice: the table row (``gelora_budget``), as run folders name it."""
    if not HydraConfig.initialized():
        return None
    return HydraConfig.get().runtime.choices.get("method")


def renamed_group_overrides(arguments: list[str], program: str) -> list[str]:
    """``rank_policy=X`` (the group before rank policies and budgets became one ``method`` group)
    read as ``method=X``, said once on stderr; ``rank_policy.<key>=`` is the policy's own key.
    Given beside an explicit ``method=Y`` that differs, it is refused in one line (exit 2): the
    old spelling must not silently replace the choice the user wrote."""
    explicit = {item.partition("=")[2] for item in arguments if item.startswith("method=")}
    old = {item.partition("=")[2] for item in arguments if item.startswith("rank_policy=")}
    if explicit and old and explicit != old:
        print(f"{program}: error: method={','.join(sorted(explicit))} and rank_policy="
              f"{','.join(sorted(old))} both name the table row (rank_policy=X is the old "
              "spelling of method=X); give one: method=...", file=sys.stderr)  # fmt: skip
        sys.exit(2)
    renamed = [
        "method=" + item.partition("=")[2] if item.startswith("rank_policy=") else item
        for item in arguments
    ]
    if explicit:  # the same row in both spellings: once (Hydra refuses a key given twice)
        renamed = [item for k, item in enumerate(renamed)
                   if not (item.startswith("method=") and item in renamed[:k])]  # fmt: skip
    if renamed != arguments:
        print(f"{program}: rank_policy=X is method=X now (conf/method/: a rank policy and its "
              "budget, one table row); reading it so", file=sys.stderr)  # fmt: skip
    return renamed


@hydra.main(config_path=config_dir(), config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from gelora.pipeline import run

    sweep = _in_sweep()
    primary = f"test/{cfg.task.metrics[0]}" if cfg.task.metrics else None
    if sweep:
        hydra_cfg = HydraConfig.get()
        log.info(job_line(hydra_cfg.job.num, hydra_cfg.overrides.task, Path(hydra_cfg.sweep.dir)))
    try:
        record = run(cfg, variant=_variant())
    except (ConfigError, AssetError) as error:
        log.error("gelora-train: error: %s", error)
        if sweep:
            return None  # recorded as failed in its results.json; the sweep goes on
        sys.exit(2)
    except SIGTERMException:  # a SystemExit with code 0: say it was stopped (128 + SIGTERM)
        log.error("gelora-train: stopped by SIGTERM; its last.ckpt resumes it")
        sys.exit(143)
    except KeyboardInterrupt:  # Ctrl-C outside Lightning's fit (the profile, the figures): the
        # record says interrupted and how to resume; one line here, not Python's traceback
        log.error("gelora-train: interrupted (Ctrl-C)")
        sys.exit(130)
    except Exception as error:  # a sweep outlives its failed jobs
        if not sweep:
            raise
        log.error("gelora-train: job failed (%s: %s); see its results.json", type(error).__name__,
                  error)  # fmt: skip
        return None
    return (record.get("metrics") or {}).get(primary)


HELP = """gelora-train: fine-tune with GeLoRA (or a baseline) and print the ID profile, the rank
plan and the test score. A Hydra app: choose a config group option with group=option, override any
key with key=value, sweep with -m (see README.md).

  gelora-train                                  # GeLoRA on the offline default
  gelora-train method=lora budget.rank=2        # uniform LoRA at a budget
  gelora-train -m experiment=table_cpu          # a sweep
  gelora-train --cfg job                        # the composed config only
  gelora-train --hydra-help                     # Hydra's own flags (launchers, sweeps, logging)

== Config groups (group=option) ==
{groups}
== Config (the defaults, with your overrides) ==
{config}"""


def config_groups(root: Path) -> dict[str, list[str]]:
    """Every config group under ``root`` (``conf/``) and its options, Hydra's own left out."""
    groups = {}
    for folder in sorted(p for p in root.rglob("*") if p.is_dir()):
        group = folder.relative_to(root).as_posix()
        options = sorted(f.stem for f in folder.glob("*.yaml"))
        if options and not group.startswith("hydra"):
            groups[group] = options
    return groups


def help_text(overrides: list[str]) -> str:
    """What ``--help`` prints: the groups (read from ``conf/``) and the composed config.

    Hydra's own ``--help`` lists groups by copying its config repository once per option, which
    takes seconds; reading the folder takes milliseconds, so ``--help`` answers at once.
    """
    from hydra import compose, initialize_config_dir

    groups = "".join(f"{g}: {', '.join(o)}\n" for g, o in config_groups(Path(config_dir())).items())
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("train", overrides=[*overrides, "paths.output_dir='<run dir>'"])
    return HELP.format(groups=groups, config=OmegaConf.to_yaml(cfg))


def output_root(arguments: list[str]) -> Path:
    """Where Hydra will create this command's run (or sweep) folder, as far as the command line
    says: ``hydra.run.dir`` (``hydra.sweep.dir`` with ``-m``), else under the working folder."""
    sweep = "-m" in arguments or "--multirun" in arguments
    key = "hydra.sweep.dir=" if sweep else "hydra.run.dir="
    given = [a.split("=", 1)[1] for a in arguments if a.startswith(key)]
    if given and "${" not in given[-1]:
        return Path(given[-1].strip("'\""))
    return Path.cwd() / ("multirun_outputs" if sweep else "outputs")


# Hydra's flags that take the next argument as their value (``--info`` only when it has no "=").
HYDRA_VALUE_FLAGS = {
    "--cfg", "-c", "--package", "-p", "--config-path", "-cp", "--config-name", "-cn",
    "--config-dir", "-cd", "--info", "-i", "--experimental-rerun",
}  # fmt: skip


def refuse_unparsable_overrides(arguments: list[str], program: str) -> None:
    """Exit with one line, before anything is created, when an override cannot be parsed (a
    value with a space the shell split, for one): Hydra's own parser error comes after the run
    folder was made, and leaves it empty."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    overrides, skip = [], False
    for item in arguments:
        if skip and "=" not in item:  # the flag's value (--info's is optional: not key=value)
            skip = False
            continue
        skip = item in HYDRA_VALUE_FLAGS
        if not item.startswith("-"):
            overrides.append(item)
    parser = OverridesParser.create()
    for item in overrides:
        try:
            parser.parse_overrides([item])
        except OverrideParseException:
            print(f"{program}: error: cannot read {item!r} as key=value: a value with spaces or "
                  "other special characters must be quoted whole, e.g. "
                  "'hydra.run.dir=\"outputs/my run\"'", file=sys.stderr)  # fmt: skip
            sys.exit(2)


def refuse_unusable_output(arguments: list[str], program: str) -> None:
    """Exit with one line when the run folder cannot be created or written (Hydra would print
    its own traceback, and exit 0)."""
    from gelora.run_folder import RunFolderError, check_writable

    try:
        check_writable(output_root(arguments))
    except RunFolderError as error:
        print(f"{program}: error: {error}", file=sys.stderr)
        sys.exit(2)


def cli() -> None:
    """The console script: ``--help`` answered here, everything else by the Hydra app."""
    sys.argv[1:] = arguments = renamed_group_overrides(sys.argv[1:], "gelora-train")
    if "--help" in arguments or "-h" in arguments:
        print(help_text([a for a in arguments if a not in ("--help", "-h")]))
        return
    refuse_unparsable_overrides(arguments, "gelora-train")
    refuse_unusable_output(arguments, "gelora-train")
    main()


if __name__ == "__main__":
    cli()
