"""Methods: how a run adapts the model, one module each.

A method plans ranks (from the targets, the ID profile and the budget), puts adapters into the
model, and may add training callbacks and a summary to the run's record (``base.Method``). Our own
LoRA layers sized by any rank policy of ``gelora.ranks`` are ``ours.InjectedLoRA``; peft's
AdaLoRA and EVA are ``adalora`` and ``eva``. A config under ``conf/rank_policy/`` names either a
rank policy or a method class; ``as_method`` turns the first into the second.

Adding a method: one module here with a class that has the attributes of ``Method`` (subclass
``InjectedLoRA`` to keep our layers), and one file in ``conf/rank_policy/`` naming it.
"""

from gelora.methods.base import AdaptSettings, Method, as_method

__all__ = ["AdaptSettings", "Method", "as_method"]
