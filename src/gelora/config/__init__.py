"""Typed configs: the schemas Hydra checks at compose time (registered on import), the range
checks of a run, and building the objects a config names."""

from gelora.config.schema import register_schemas

__all__ = ["register_schemas"]
