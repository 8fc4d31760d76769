"""The errors a user can act on, at the ground floor: every package raises them, none imports
another package to do so.

- ``ConfigError``: a config value (or the data it points at) is wrong; reported as one line that
  names the key, before any model is loaded where that is possible.
- ``AssetError``: an offline asset could not be fetched, verified, extracted or built.
"""

from __future__ import annotations


class ConfigError(ValueError):
    """A config value (or data) a user can fix; reported as one line naming the key."""


class AssetError(RuntimeError):
    """An offline asset could not be fetched, verified, extracted or built."""
