"""ID profiles computed once and shared: bit-identical to a fresh estimate, keyed on everything
they depend on, and never read back when an entry is stale or damaged."""

from __future__ import annotations

import json

import pytest

from gelora.assets import CACHE_ENV_VAR
from tests.helpers import TINY, run_in_process

PROFILE = [*TINY, "estimator.n_resamples=3", "method=gelora"]


@pytest.fixture
def fresh_cache(monkeypatch, tmp_path):
    """An asset cache of this test's own (archives seeded), so no other test's profile is found."""
    from gelora import assets

    root = tmp_path / "cache"
    assets.copy_verified_archives(assets.cache_root() / "downloads", root / "downloads")
    monkeypatch.setenv(CACHE_ENV_VAR, str(root))
    return root / "id_profiles"


def _entry(cache_dir):
    (path,) = sorted(cache_dir.glob("*.json"))
    return path


def test_a_reused_profile_is_bit_identical_to_a_fresh_estimate(tmp_path, fresh_cache):
    first = run_in_process(tmp_path / "a", *PROFILE)
    # Another method (and budget): the same profile. (A training seed would change the tiny
    # model's random weights, and so its key: the key holds the weights themselves.)
    second = run_in_process(tmp_path / "b", *PROFILE, "method=lora", "budget.rank=2")
    fresh = run_in_process(tmp_path / "c", *PROFILE, "estimator.cache=false")
    assert first["id_profile_cache"]["outcome"] == "computed"
    assert second["id_profile_cache"]["outcome"] == "reused"
    assert fresh["id_profile_cache"] == {"outcome": "off"}
    assert first["id_profile_cache"]["key"] == second["id_profile_cache"]["key"]
    # The record names the entry under the cache, never a folder of this machine.
    entry = _entry(fresh_cache)
    assert first["id_profile_cache"]["path"] == f"$GELORA_CACHE/id_profiles/{entry.name}"
    for other in (second, fresh):
        assert other["id_profile"] == first["id_profile"]  # every layer and resample, exactly
        assert other["intrinsic_dims"] == first["intrinsic_dims"]
    assert fresh["ranks"] == first["ranks"]
    assert "id_estimation_s" in second["timings"]


def test_the_key_changes_with_what_the_profile_depends_on(tmp_path, fresh_cache):
    base = run_in_process(tmp_path / "a", *PROFILE)["id_profile_cache"]["key"]
    for override in ("estimator.sample_seed=1", "estimator.pooling=cls", "task.max_length=16",
                     "estimator.n_resamples=2", "seed=1"):  # fmt: skip
        run_dir = tmp_path / override.replace("=", "-")
        other = run_in_process(run_dir, *PROFILE, override)["id_profile_cache"]
        assert other["outcome"] == "computed", override
        assert other["key"] != base, override


@pytest.mark.parametrize(
    ("damage", "outcome"),
    [
        (lambda entry: entry["profile"]["layers"][1].update(dimension=99.0), "corrupt"),
        (lambda entry: entry.update(code_version=0), "stale"),
        (lambda entry: entry["key"].update(pooling="cls"), "stale"),
        (None, "corrupt"),  # a truncated file
    ],
)
def test_a_stale_or_damaged_entry_is_recomputed_never_used(tmp_path, fresh_cache, damage, outcome):
    first = run_in_process(tmp_path / "a", *PROFILE)
    path = _entry(fresh_cache)
    if damage is None:
        path.write_text(path.read_text()[:200])
    else:
        entry = json.loads(path.read_text())
        damage(entry)
        path.write_text(json.dumps(entry))
    again = run_in_process(tmp_path / "b", *PROFILE)
    assert again["id_profile_cache"]["outcome"] == f"recomputed ({outcome})"
    assert again["id_profile"] == first["id_profile"]
    third = run_in_process(tmp_path / "c", *PROFILE)  # the entry was rewritten whole
    assert third["id_profile_cache"]["outcome"] == "reused"


def test_threads_sets_torch_threads_for_the_run(tmp_path):
    import torch

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(3)  # not what the run asks for, nor the test workers' 1
        results = run_in_process(tmp_path, *TINY, "threads=2")
        assert results["status"] == "completed"
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_tokenised_splits_are_shared_and_equal_to_a_fresh_tokenisation(tmp_path):
    from transformers import AutoTokenizer

    from gelora.assets import asset_path
    from gelora.data.datamodule import TokenizedSplit
    from gelora.data.task_data import Split
    from gelora.data.token_cache import token_cache_key

    tokenizer = AutoTokenizer.from_pretrained(asset_path("all-minilm-l6-v2"))
    split = Split(["a warm film", "dull, far too long and dull again", "fine"], [1, 0, 1],
                  text_pairs=["yes", "no", "a very long pair text " * 20])  # fmt: skip
    fresh = TokenizedSplit(split, tokenizer, 16)
    first = TokenizedSplit(split, tokenizer, 16, cache_dir=tmp_path)
    second = TokenizedSplit(split, tokenizer, 16, cache_dir=tmp_path)
    assert (fresh.cache_outcome, first.cache_outcome, second.cache_outcome) == (
        "off",
        "computed",
        "reused",
    )
    assert second.rows == first.rows == fresh.rows
    assert TokenizedSplit(split, tokenizer, 8, cache_dir=tmp_path).cache_outcome == "computed"
    key = token_cache_key(tokenizer, 16, split.texts, split.text_pairs)
    entry = tmp_path / f"{key}.npz"
    entry.write_bytes(entry.read_bytes()[:50])  # damaged
    again = TokenizedSplit(split, tokenizer, 16, cache_dir=tmp_path)
    assert again.cache_outcome == "recomputed (corrupt)" and again.rows == fresh.rows
