"""``rank_pattern`` / ``alpha_pattern`` keys that peft resolves to exactly one module each.

peft reads a pattern key as a regular expression matched against the end of a module's full name
(``peft.utils.other.get_pattern_key``: ``re.match(rf"(.*\\.)?({key})$", name)``, the first key
that matches wins). A key is therefore safe only when, under that rule, it matches one target
module: ``layer.1.attention.self.query`` must not also catch ``layer.11.attention.self.query``
(it does not: the rule anchors at the end and at a dot) nor ``other.layer.1.attention...``.

We emit each module's full name as its key; where that name would also match another target
(a module whose name ends in it), the key is pinned to the start of the name
(``^`` + the escaped name), which peft's rule then matches once. Every config we write is
checked (``check_pattern_keys``) against the modules peft will adapt.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from torch import nn

from gelora.errors import ConfigError

PATTERN_FIELDS = ("rank_pattern", "alpha_pattern")


def peft_matches(key: str, module_name: str) -> bool:
    """Whether peft applies pattern ``key`` to ``module_name`` (peft's own ``get_pattern_key``
    asked about this one key)."""
    from peft.utils.other import get_pattern_key

    try:
        return module_name == key or get_pattern_key([key], module_name) == key
    except re.error:
        return False


def pattern_key(name: str, module_names: Iterable[str]) -> str:
    """The key for module ``name``: its full name, or that name pinned to the start where the
    full name would also match another of ``module_names``."""
    if sum(peft_matches(name, other) for other in module_names) <= 1:
        return name
    return "^" + re.escape(name)


def pattern_keys(names: Sequence[str]) -> dict[str, str]:
    """Each module name and the key that, under peft's rule, matches it alone among ``names``."""
    return {name: pattern_key(name, names) for name in names}


def resolve_pattern(patterns: dict, module_name: str, default):
    """The value peft gives ``module_name`` from ``patterns`` (first key that matches), else
    ``default``."""
    for key, value in patterns.items():
        if peft_matches(key, module_name):
            return value
    return default


def check_pattern_keys(config, module_names: Iterable[str]) -> None:
    """Every ``rank_pattern`` / ``alpha_pattern`` key of ``config`` (a ``LoraConfig`` or its
    dict) matches exactly one of ``module_names`` (the modules peft will adapt) by peft's rule.

    Raises:
        ConfigError: a key matching no module, or two or more (named, with what it matched).
    """
    names = list(module_names)
    for field in PATTERN_FIELDS:
        patterns = config.get(field) if isinstance(config, dict) else getattr(config, field, None)
        for key in patterns or {}:
            matched = [name for name in names if peft_matches(key, name)]
            if len(matched) == 1:
                continue
            if not matched:
                raise ConfigError(
                    f"{field} key {key!r} matches no target module (peft would ignore it)"
                )
            shown = ", ".join(matched[:3]) + (", ..." if len(matched) > 3 else "")
            raise ConfigError(
                f"{field} key {key!r} matches {len(matched)} target modules ({shown}), "
                "not exactly one: peft would give them all its value"
            )


def peft_target_names(config, model: nn.Module) -> list[str]:
    """The modules of ``model`` that peft adapts under ``config`` (peft's own
    ``check_target_module_exists``, as ``get_peft_model`` asks it)."""
    from peft.tuners.tuners_utils import check_target_module_exists

    # an excluded module (modules_to_save, exclude_modules) is a falsy answer
    names = (name for name, _ in model.named_modules() if name)
    return [name for name in names if check_target_module_exists(config, name)]


def check_on_model(config, model: nn.Module) -> None:
    """``check_pattern_keys`` against the modules peft will adapt in ``model``.

    Raises:
        ConfigError: a pattern key matching no target module of ``model``, or several.
    """
    check_pattern_keys(config, peft_target_names(config, model))
