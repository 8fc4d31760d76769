"""What an offline wandb run holds, read from its folder as ``wandb sync`` would upload it.

wandb 0.31 writes an offline run as ``run-<id>.wandb``: a log of ``Record`` protobufs
(``wandb.proto.wandb_internal_pb2``) in LevelDB's log format, which wandb's Python package no
longer reads (its Go core does). The format: a 7-byte header (``:W&B``, magic ``0xBEE1``,
version), then 32 KiB blocks of chunks, each a 7-byte header (CRC, length as little-endian
``uint16``, type: 1 full, 2 first, 3 middle, 4 last) and its bytes; a block's last 6 bytes or
fewer are padding. Tables and charts' data are files under ``files/media/table/``.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BLOCK = 32768
HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(run_dir: Path) -> list[Any]:
    """Every record of the offline run in ``run_dir`` (an ``offline-run-*`` folder), in order."""
    from wandb.proto import wandb_internal_pb2 as pb

    (path,) = run_dir.glob("run-*.wandb")
    raw = path.read_bytes()
    assert raw[:4] == b":W&B", f"{path} is not a wandb run file"
    found, pos, pieces = [], HEADER, b""
    while pos + HEADER <= len(raw):
        left = BLOCK - pos % BLOCK
        if left < HEADER:  # a block's padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", raw[pos : pos + HEADER])
        data, pos = raw[pos + HEADER : pos + HEADER + length], pos + HEADER + length
        if kind in (FIRST, MIDDLE):
            pieces = (b"" if kind == FIRST else pieces) + data
            continue
        if kind not in (FULL, LAST):
            continue  # zeros: the end of the data written so far
        record = pb.Record()
        record.ParseFromString(pieces + data if kind == LAST else data)
        found.append(record)
    return found


@dataclass
class OfflineRun:
    """An offline run as its dashboard shows it: group, job type, name, config, summary."""

    folder: Path
    group: str = ""
    job_type: str = ""
    name: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)

    def table(self, key: str) -> dict[str, Any]:
        """The logged table ``key`` (a chart's table is ``<chart key>_table``): ``columns``,
        ``data``."""
        entry = self.summary[key]
        return json.loads((self.folder / "files" / entry["path"]).read_text())


def _key(item: Any) -> str:
    return item.key or "/".join(item.nested_key)


def read_run(run_dir: Path) -> OfflineRun:
    """The run in ``run_dir``: its run record, every config update, the last summary values."""
    run = OfflineRun(run_dir)
    for record in records(run_dir):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run.group, run.job_type = record.run.run_group, record.run.job_type
            run.name = record.run.display_name
            updates = record.run.config.update
        elif kind == "config":
            updates = record.config.update
        elif kind == "summary":
            for item in record.summary.update:
                _set(run.summary, list(item.nested_key) or [item.key], json.loads(item.value_json))
            continue
        else:
            continue
        for item in updates:
            _set(run.config, list(item.nested_key) or [item.key], json.loads(item.value_json))
    return run


def _set(tree: dict[str, Any], path: list[str], value: Any) -> None:
    """``tree[path[0]][path[1]]... = value``, where a nested key (``a/b`` logged as a dict's
    member) is a path; a flat key with ``/`` in it stays one key."""
    for name in path[:-1]:
        tree = tree.setdefault(name, {})
    tree[path[-1]] = value


def offline_runs(folder: Path) -> list[OfflineRun]:
    """Every offline run under ``folder``'s ``wandb/``, oldest first."""
    return [read_run(run) for run in sorted((folder / "wandb").glob("offline-run-*"))]
