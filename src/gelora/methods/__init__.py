"""Methods: how a run adapts the model, one module each.

A method plans ranks (from the targets, the ID profile and the budget), puts adapters into the
model, and may add training callbacks and a summary to the run's record (``base.Method``;
``base.BaseMethod`` has the defaults). Our own LoRA layers sized by any rank policy of
``gelora.ranks`` (every rank allocator, the gradient allocators and the shuffled control
included; an allocator that reads the model first is prepared through it) are
``ours.InjectedLoRA``; peft's AdaLoRA and EVA are ``adalora`` and ``eva``.
The ``rank_policy`` node of a ``conf/method/`` file names either a rank policy or a method class;
``ours.as_method`` turns the first into the second.

Adding a method: one module here with a class that has the attributes of ``Method`` (subclass
``ours.LoRALayersMethod`` to keep our layers, as EVA does, or ``base.BaseMethod`` to wrap the model
yourself, as AdaLoRA does), and one file in ``conf/method/`` naming it (its
``rank_policy._target_``).
"""

from gelora.methods.base import AdaptSettings, BaseMethod, Method
from gelora.methods.ours import InjectedLoRA, LoRALayersMethod, as_method

__all__ = [
    "AdaptSettings",
    "BaseMethod",
    "InjectedLoRA",
    "LoRALayersMethod",
    "Method",
    "as_method",
]
