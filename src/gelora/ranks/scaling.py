"""The LoRA scaling rule: how an adapter's update is scaled at each rank.

LoRA's update is ``(alpha / r) B A x`` (Hu et al. 2021, section 4.1). A comparison of methods
that give different matrices different ranks is only fair when every method scales its updates
by the same rule, so the rule is one setting of the run (``lora.scaling``, ``lora.scale``),
handed to every rank policy and method, peft's included. Two rules:

- ``constant``: ``alpha / r = scale`` at every rank (the LoRA and AdaLoRA GLUE baselines use 2;
  the GeLoRA paper, arXiv 2412.09250, uses 32);
- ``rslora``: ``alpha / sqrt(r) = scale``, rank-stabilised LoRA (Kalajdzievski 2023,
  arXiv 2312.03732), whose update size does not grow or shrink with the rank.

Our layers and peft's (without ``use_rslora``) both multiply by ``alpha / r``, so a rule is
expressed as the alpha of each rank: ``alpha(r) = factor(r) * r``. This is the one place that
says so.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

SCALING_RULES = ("constant", "rslora")


@dataclass(frozen=True)
class Scaling:
    """One scaling rule: ``rule`` (``constant`` | ``rslora``) with its ``scale``."""

    rule: str = "constant"
    scale: float = 2.0

    def __post_init__(self) -> None:
        if self.rule not in SCALING_RULES:
            raise ValueError(
                f"lora.scaling must be one of {', '.join(SCALING_RULES)}, got {self.rule!r}"
            )
        if not self.scale > 0:
            raise ValueError(f"lora.scale must be > 0, got {self.scale}")

    @classmethod
    def of(cls, value: Scaling | Mapping[str, Any] | None) -> Scaling:
        """A ``Scaling`` from itself, a mapping with ``rule`` and ``scale`` (a config node),
        or ``None`` (the default rule)."""
        if value is None:
            return cls()
        if isinstance(value, Scaling):
            return value
        given = {"rule": value.get("rule"), "scale": value.get("scale")}
        return cls(**{key: v for key, v in given.items() if v is not None})

    def factor(self, rank: int) -> float:
        """The multiplier of ``B A x`` at ``rank``."""
        if self.rule == "rslora":
            return self.scale / math.sqrt(rank)
        return self.scale

    def alpha(self, rank: int) -> float:
        """``lora_alpha`` at ``rank`` for layers that multiply by ``alpha / r``."""
        return float(self.factor(rank) * rank)

    @property
    def text(self) -> str:
        if self.rule == "rslora":
            return f"alpha/sqrt(r) = {self.scale:g} (rsLoRA)"
        return f"alpha/r = {self.scale:g}"

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "scale": self.scale, "text": self.text}


def scaling_from_config(lora_cfg: Mapping[str, Any] | None) -> Scaling:
    """The run's rule from its ``lora`` config node (``lora.scaling``, ``lora.scale``)."""
    lora_cfg = lora_cfg or {}
    return Scaling.of({"rule": lora_cfg.get("scaling"), "scale": lora_cfg.get("scale")})
