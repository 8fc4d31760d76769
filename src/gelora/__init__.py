"""gelora: Geometric Low-Rank Adaptation (Ed-dib et al., arXiv 2412.09250).

LoRA ranks chosen per block from the intrinsic dimension of the hidden states entering and
leaving it.

The names below are imported on first use, so that ``import gelora`` (and ``gelora-train --help``)
does not pay for torch, scikit-learn and transformers.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "MLE": "gelora.geometry.mle",
    "TwoNN": "gelora.geometry.twonn",
    "LoRALinear": "gelora.lora.layer",
    "RankPlan": "gelora.ranks.plan",
    "lora_config_for": "gelora.plan",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'gelora' has no attribute {name!r}")


def __dir__() -> list[str]:
    return [*globals(), *_EXPORTS]
