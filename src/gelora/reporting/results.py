"""Writing results atomically: a reader sees the old file or the new one, never half of one."""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any


def write_text_atomic(path: Path, text: str) -> Path:
    """Write ``text`` to a temp file beside ``path``, fsync it, then rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the usual permissions
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json_atomic(path: Path, payload: dict[str, Any]) -> Path:
    return write_text_atomic(path, json.dumps(payload, indent=2, default=str))


SECRET_KEY = re.compile(r"api[_-]?key|token|secret|password|passwd|credential", re.IGNORECASE)


def redact_secrets(value: Any) -> Any:
    """A copy of a config tree with the value of every secret-looking key replaced, so keys that
    a user passed as overrides never reach ``results.json`` or an experiment logger."""
    if isinstance(value, dict):
        return {
            k: "<redacted>" if SECRET_KEY.search(str(k)) and v is not None else redact_secrets(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact_secrets(v) for v in value]
    return value
