"""Building objects named by a config node (``_target_``), with errors that name the node."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from gelora.errors import ConfigError


def build(node: DictConfig, key: str, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate`` with the underlying error surfaced as a ``ConfigError``
    naming ``key``; ``null`` values are left out, so a callee keeps its own defaults."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    try:
        return instantiate(node, **kwargs)
    except InstantiationException as error:
        cause = str(error.__cause__ or error)
        named = cause.startswith((f"{key}.", f"{key}:", f"{key}="))  # it names its key already
        raise ConfigError(cause if named else f"{key}: {cause}") from error
