"""The exact neighbour search against float64 brute force, where the distance expansion cancels.

``|x|^2 + |y|^2 - 2 x.y`` in float32 loses the neighbours of points far from the origin with a
small spread ([CLS]-pooled states): these tests hold the search to zero wrong first and second
neighbours there, on synthetic clouds and on the default model's real hidden states.
"""

from __future__ import annotations

import math

import pytest
import torch
from sklearn.neighbors import NearestNeighbors

from gelora.geometry.distance_tiles import centre_and_scale, centred, expansion_bound
from gelora.geometry.neighbors import exact_nearest_neighbors, nearest_neighbor_distances

# A neighbour is wrong when its distance is off by more than this (relative; float32-level
# distances pass) or when its index differs where the true distances are not tied this closely.
RTOL = 1e-6


def brute_force(points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """All distances in float64 from coordinate differences (no matmul expansion), sorted."""
    x = points.double()
    distances = torch.cdist(x, x, compute_mode="donot_use_mm_for_euclid_dist")
    distances.fill_diagonal_(float("inf"))
    return torch.sort(distances, dim=1)


def count_wrong(points: torch.Tensor, distances, indices, k: int, reference=None) -> list[int]:
    """Wrong neighbours per rank: a distance off the float64 brute force (``reference``, its
    output if computed already), or another index where the reference distance is not tied with
    its neighbours in rank."""
    reference, order = reference or brute_force(points)
    distances = distances.double()
    wrong = []
    for rank in range(k):
        expected = reference[:, rank]
        off = (distances[:, rank] - expected).abs() > RTOL * expected
        gap_below = expected - reference[:, rank - 1] if rank else torch.full_like(expected, 1.0)
        gap_above = reference[:, rank + 1] - expected
        untied = (torch.minimum(gap_below, gap_above) > RTOL * expected) & (expected > 0)
        swapped = untied & (indices[:, rank] != order[:, rank])
        wrong.append(int((off | swapped).sum()))
    return wrong


def far_cloud(n=2000, intrinsic=5, width=384, norm=50.0, spread=0.002, seed=0) -> torch.Tensor:
    """A Gaussian of ``intrinsic`` dimensions and standard deviation ``spread`` in ``width``
    coordinates, offset by a random vector of length ``norm``; float32, as hidden states are."""
    generator = torch.Generator().manual_seed(seed)
    basis, _ = torch.linalg.qr(torch.randn(width, intrinsic, generator=generator).double())
    cloud = spread * torch.randn(n, intrinsic, generator=generator).double() @ basis.T
    offset = torch.randn(width, generator=generator).double()
    return (cloud + norm * offset / offset.norm()).float()


@pytest.fixture(scope="module")
def far_cloud_and_reference():
    points = far_cloud()
    return points, brute_force(points)


@pytest.mark.parametrize(("k", "block_size"), [(2, None), (2, 300), (20, None)])
def test_far_from_origin_cloud_has_no_wrong_neighbours(far_cloud_and_reference, k, block_size):
    # Norm 50, spread 0.002: the float32 expansion's error (~1e-4 in squares) dwarfs the
    # squared neighbour distances (~1e-6); before the fix most r1 and r2 were wrong here.
    points, reference = far_cloud_and_reference
    distances, indices = nearest_neighbor_distances(points, k=k, block_size=block_size)
    assert count_wrong(points, distances, indices, k, reference) == [0] * k
    # and the distances are float64-exact (both sides from float64 coordinate differences)
    torch.testing.assert_close(distances, reference[0][:, :k], rtol=1e-12, atol=0)


def test_a_tight_cluster_far_from_the_mean_falls_back_to_float64_and_stays_exact():
    # Two clusters 1000 apart: centring leaves each 500 from the mean with spread ~0.002, too
    # tight for float32 tiles to certify; the float64 tiles must take over (in several blocks).
    cluster = far_cloud(n=600)
    points = torch.cat([cluster, cluster + 1000 / math.sqrt(cluster.shape[1])])
    found = exact_nearest_neighbors(points, k=2, block_size=257)
    assert found.n_float64_rows > 0
    assert count_wrong(points, found.distances, found.indices, 2) == [0, 0]


def test_float64_input_beyond_float64_tiles_is_brute_forced_and_exact():
    # Spread 1e-7 at distance 1e6 from the mean: 1e-13 relative, beyond float64 tiles too.
    generator = torch.Generator().manual_seed(0)
    spread = 1e-7 * torch.randn(600, 3, generator=generator, dtype=torch.float64)
    points = torch.cat([spread[:300] + 1e6, spread[300:] - 1e6])
    before = points.clone()
    found = exact_nearest_neighbors(points, k=2)
    assert found.n_direct_rows > 0
    assert count_wrong(points, found.distances, found.indices, 2) == [0, 0]
    assert torch.equal(points, before)  # centring works on copies


def test_ordinary_data_is_certified_without_fallback():
    # Near the origin the float32 tiles certify (almost) every row: exactness costs no float64
    # search. scikit-learn's float64 search is accurate enough here to compare with.
    generator = torch.Generator().manual_seed(0)
    basis, _ = torch.linalg.qr(torch.randn(384, 10, generator=generator))
    points = torch.randn(3000, 10, generator=generator) @ basis.T
    found = exact_nearest_neighbors(points, k=2)
    assert found.n_float64_rows <= 3 and found.n_direct_rows == 0  # near-ties only
    _, reference = NearestNeighbors(n_neighbors=3).fit(points.double()).kneighbors(points.double())
    assert (found.indices.numpy() == reference[:, 1:]).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("centre_points", [True, False])
def test_expansion_bound_holds_for_every_pair(dtype, centre_points):
    # The certificate rests on tile value <= G(true distance) for every pair: check it on a
    # tile of a far cloud, centred (small errors) and not centred (large errors).
    points = far_cloud(n=400, width=64, norm=50.0, spread=0.01)
    centre, scale = centre_and_scale(points)
    if not centre_points:
        centre = torch.zeros_like(centre)
        scale = 2.0 ** -math.frexp(float(points.abs().max()))[1]
    tile_points = centred(points, centre, scale).to(dtype)
    norms = (tile_points * tile_points).sum(dim=1)
    tile = torch.addmm(norms[:, None], tile_points, tile_points.T, alpha=-2.0) + norms[None, :]
    x = points.double()
    true = torch.cdist(x, x, compute_mode="donot_use_mm_for_euclid_dist") * scale
    row_norms = torch.linalg.vector_norm(tile_points.double(), dim=1)
    bound = expansion_bound(true, row_norms[:, None], dtype, points.shape[1])
    assert (tile.double() <= bound).all()
    if centre_points:  # and, centred, it is tight enough to certify nearly every row
        off_diagonal = ~torch.eye(len(points), dtype=torch.bool)
        slack = ((bound - true**2) / true**2)[off_diagonal]
        assert float(slack.max()) < (0.05 if dtype == torch.float32 else 1e-8)


def test_tf32_settings_are_forced_off_inside_and_restored_after():
    matmul = torch.backends.cuda.matmul
    if not hasattr(matmul, "fp32_precision"):
        pytest.skip("torch < 2.9 has no per-backend float32 precision")
    saved = matmul.fp32_precision
    try:
        torch.set_float32_matmul_precision("high")  # what Lightning suggests on GPUs
        points = far_cloud(n=300)
        distances, indices = nearest_neighbor_distances(points, k=2)
        assert count_wrong(points, distances, indices, 2) == [0, 0]
        assert matmul.fp32_precision == "tf32"
        assert torch.get_float32_matmul_precision() == "high"  # legacy getter still consistent
    finally:
        torch.set_float32_matmul_precision("highest")
        matmul.fp32_precision = saved


@pytest.fixture(scope="module")
def cls_hidden_states() -> torch.Tensor:
    """[CLS]-pooled hidden states of the default model (all-MiniLM-L6-v2) on 300 rotten_tomatoes
    training texts, as the profile stage collects them (from the test asset cache, offline)."""
    from gelora.geometry.hidden_states import collect_hidden_states
    from gelora.stages.backbone import load_backbone
    from gelora.stages.profile import sample_texts
    from gelora.stages.task import load_task
    from tests.helpers import compose_train

    cfg = compose_train("paths.output_dir=unused")
    assert cfg.model.name == "minilm_l6" and cfg.task.name == "rotten_tomatoes"
    task = load_task(cfg.task)
    backbone = load_backbone(cfg.model, task, None)
    texts = sample_texts(task.train.inputs(), 300, seed=0)
    return collect_hidden_states(
        backbone.model, backbone.tokenizer, texts, pooling="cls", max_length=32, progress=False
    )


def test_cls_hidden_states_of_minilm_have_no_wrong_neighbours_at_any_layer(cls_hidden_states):
    # Before the fix: at 300 texts, 70% of r1 and 94% of r2 wrong at layer 3 (norm ~9.7,
    # spread ~0.01 around the mean), and 10-27% at layers 1 and 2.
    assert cls_hidden_states.shape == (7, 300, 384)
    for layer, points in enumerate(cls_hidden_states):
        distances, indices = nearest_neighbor_distances(points, k=2)
        assert count_wrong(points, distances, indices, 2) == [0, 0], f"layer {layer}"
