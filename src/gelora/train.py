"""``gelora-train``: the Hydra app. Composes ``conf/train.yaml`` and runs ``gelora.pipeline.run``.

gelora-train                                   # GeLoRA on the offline default
gelora-train rank_policy=lora rank_policy.rank=4
gelora-train task.max_train_samples=300 trainer.max_steps=20 logger=none
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from gelora.assets import AssetError
from gelora.pipeline import ConfigError, run


def config_dir() -> str:
    """The packaged configs (wheel install) or the repository's ``conf/`` (editable install)."""
    packaged = Path(__file__).parent / "conf"
    if packaged.is_dir():
        return str(packaged)
    return str(Path(__file__).resolve().parents[2] / "conf")


@hydra.main(config_path=config_dir(), config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    try:
        record = run(cfg)
    except (ConfigError, AssetError) as error:
        print(f"gelora-train: error: {error}", file=sys.stderr)
        sys.exit(2)
    return record["metrics"].get(f"test/{cfg.task.metrics[0]}")


if __name__ == "__main__":
    main()
