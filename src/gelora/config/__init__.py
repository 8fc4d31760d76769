"""Typed configs: the schemas Hydra checks at compose time (registered on import), the chosen
learning rate's resolver, the range checks of a run, and building the objects a config names."""

from gelora.config.lr_choice import register_lr_choice
from gelora.config.schema import register_schemas

register_lr_choice()

__all__ = ["register_lr_choice", "register_schemas"]
