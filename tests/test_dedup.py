"""``estimator.dedup=near``: planted near-copies are dropped, one kept per group, and counted in
the profile result, the cache entry and results.json."""

from __future__ import annotations

import pytest
import torch

from gelora.geometry.near_duplicates import near_duplicates, normalise_text, text_copies
from tests.helpers import TINY, run_in_process


def points_with_planted_copies() -> tuple[torch.Tensor, list[int]]:
    """200 Gaussian points in 10-D (nearest-neighbour distances ~1), then 6 copies: 3 jittered
    by 1e-4, one exact, and a group of 3 (a point and two jittered copies of it)."""
    base = torch.randn(200, 10, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    jitter = 1e-4 * torch.randn(6, 10, generator=torch.Generator().manual_seed(1))
    copies = torch.stack(
        [
            base[3] + jitter[0],
            base[50] + jitter[1],
            base[199] + jitter[2],
            base[7],  # exact
            base[120] + jitter[3],
            base[120] + jitter[4],
        ]
    )
    return torch.cat([base, copies]), list(range(200, 206))


def test_planted_near_copies_are_dropped_and_counted():
    points, planted = points_with_planted_copies()
    found = near_duplicates(points, 0.1)
    assert sorted(set(range(206)) - set(found.keep.tolist())) == planted
    assert (found.n_near_copies, found.n_text_copies, found.n_dropped) == (6, 0, 6)
    assert found.to_dict()["dropped"] == 6 and found.to_dict()["points_before"] == 206
    assert 0 < found.radius < 0.5  # 0.1 x a median nearest-neighbour distance of ~1-3
    # threshold 0: exact copies only
    assert near_duplicates(points, 0.0).n_near_copies == 1


def test_no_copies_no_drops():
    points = torch.randn(300, 8, generator=torch.Generator().manual_seed(2))
    found = near_duplicates(points, 0.1)
    assert found.n_dropped == 0 and torch.equal(found.keep, torch.arange(300))


def test_repeated_texts_after_normalisation_drop_all_their_points():
    assert normalise_text("  Hello\n\tWORLD ") == "hello world"
    assert normalise_text(("A  b", "C")) == ("a b", "c")
    texts = ["one post", "Two posts", "ONE   post", "two posts\n", "three"]
    assert text_copies(texts).tolist() == [False, False, True, True, False]
    # token pooling: two points per text; the copies' points go too, whatever their vectors
    points = torch.randn(10, 6, generator=torch.Generator().manual_seed(3))
    text_index = torch.arange(5).repeat_interleave(2)
    found = near_duplicates(points, 0.1, texts=texts, text_index=text_index)
    assert found.keep.tolist() == [0, 1, 2, 3, 8, 9]
    assert (found.n_text_copies, found.n_near_copies) == (4, 0)


def test_bad_threshold():
    with pytest.raises(ValueError, match="threshold"):
        near_duplicates(torch.randn(5, 2), -1.0)


def test_dedup_outcome_reaches_results_and_survives_the_cache(tmp_path):
    first = run_in_process(tmp_path / "a", *TINY, "estimator.dedup=near")
    dedup = first["id_sample"]["dedup"]
    assert dedup["rule"] == "near" and dedup["threshold"] == 0.1
    assert first["id_sample"]["points"] == dedup["points_before"] - dedup["dropped"]
    assert first["id_profile"]["layers"][0]["n_used"] <= first["id_sample"]["points"]
    again = run_in_process(tmp_path / "b", *TINY, "estimator.dedup=near")
    assert again["id_profile_cache"]["outcome"] == "reused"
    assert again["id_sample"] == first["id_sample"]
    plain = run_in_process(tmp_path / "c", *TINY, "estimator.pooling=token")
    assert plain["id_profile_cache"]["outcome"] == "computed"
    assert plain["id_sample"]["dedup"] == {"rule": "none"}
    assert plain["id_sample"]["tokens_per_text"] == 1
