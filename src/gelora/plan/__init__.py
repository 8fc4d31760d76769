"""``gelora-plan``: GeLoRA's rank plan as a peft ``LoraConfig``, without our training loop.

- ``lora_config.py``: the stages up to the plan (as ``gelora-train`` runs them), then the
  ``LoraConfig``; ``lora_config_for`` does the same from Python for a model and texts of your own;
- ``compare.py``: ``--compare``, a plan per value of a key, side by side;
- ``serving.py``: ``serving_report.json``, the adapter's cost where it is served;
- ``emit.py``: ``--emit peft-bench`` and ``--emit axolotl``;
- ``cli.py``: the command line, read into one frozen ``PlanRequest``.

``from gelora.plan import lora_config_for`` keeps working; it is imported when first asked for,
so that the console script (``gelora.plan.cli``) answers ``--help`` without torch.
"""

from __future__ import annotations

_LAZY = ("lora_config_for", "lora_config_of")


def __getattr__(name: str):
    if name in _LAZY:
        from gelora.plan import lora_config

        return getattr(lora_config, name)
    raise AttributeError(f"module 'gelora.plan' has no attribute {name!r}")
