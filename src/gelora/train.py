"""``gelora-train``: the Hydra app. Composes ``conf/train.yaml`` and runs ``gelora.pipeline.run``.

gelora-train                                   # GeLoRA on the offline default
gelora-train rank_policy=lora rank_policy.rank=4
gelora-train task.max_train_samples=300 trainer.max_steps=20 logger=none
gelora-train -m experiment=table_cpu           # a sweep: every job under multirun_outputs/

In a sweep (``-m``), a job that fails is recorded in its own ``results.json`` (status and
traceback) and the sweep goes on; a job whose directory already holds a completed
``results.json`` is skipped, so re-running a sweep with the same ``sweep_id`` resumes it.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf

from gelora.assets import AssetError
from gelora.pipeline import ConfigError, completed_record, run


def job_dirname(overrides: str, limit: int = 120) -> str:
    """A sweep job's directory name: its overrides, shortened with a hash when too long.

    The name depends only on the overrides, so re-running a sweep finds the same directories.
    """
    if len(overrides) <= limit:
        return overrides or "defaults"
    digest = hashlib.sha1(overrides.encode()).hexdigest()[:12]
    return f"{overrides[: limit - 13]}-{digest}"


OmegaConf.register_new_resolver("gelora_job_dirname", job_dirname, replace=True)


def config_dir() -> str:
    """The packaged configs (wheel install) or the repository's ``conf/`` (editable install)."""
    packaged = Path(__file__).parent / "conf"
    if packaged.is_dir():
        return str(packaged)
    return str(Path(__file__).resolve().parents[2] / "conf")


def _in_sweep() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def _variant() -> str | None:
    """The ``method`` choice (a table row such as ``gelora_budget``), else the rank policy's."""
    if not HydraConfig.initialized():
        return None
    choices = HydraConfig.get().runtime.choices
    return choices.get("method") or choices.get("rank_policy")


@hydra.main(config_path=config_dir(), config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    sweep = _in_sweep()
    if sweep and (done := completed_record(cfg)) is not None:
        print(f"[gelora] {cfg.paths.output_dir}: already completed, skipped")
        return _score(done, cfg)
    try:
        record = run(cfg, variant=_variant())
    except (ConfigError, AssetError) as error:
        print(f"gelora-train: error: {error}", file=sys.stderr)
        if sweep:
            return None  # recorded as failed in its results.json; the sweep goes on
        sys.exit(2)
    except SIGTERMException:  # a SystemExit with code 0: say it was stopped (128 + SIGTERM)
        print("gelora-train: stopped by SIGTERM; its last.ckpt resumes it", file=sys.stderr)
        sys.exit(143)
    except Exception as error:  # a sweep outlives its failed jobs
        if not sweep:
            raise
        print(f"gelora-train: job failed ({type(error).__name__}: {error}); see its results.json")
        return None
    return _score(record, cfg)


def _score(record: dict, cfg: DictConfig) -> float | None:
    return record.get("metrics", {}).get(f"test/{cfg.task.metrics[0]}")


if __name__ == "__main__":
    main()
