"""Hidden-state sampling, the per-layer ID profile with error bars, and rank-plan sensitivity."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gelora import TwoNN
from gelora.geometry import collect_hidden_states, estimate_id_profile
from gelora.geometry.hidden_states import pool
from gelora.geometry.id_profile import resample_indices
from gelora.models import find_target_modules
from gelora.ranks import GeLoRAPolicy, UniformPolicy
from gelora.ranks.sensitivity import rank_sensitivity
from tests.manifolds import ball
from tests.tiny_models import BERT_TARGETS


def test_mean_pooling_ignores_padding():
    hidden = torch.arange(2 * 3 * 2, dtype=torch.float32).reshape(2, 3, 2)
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    pooled = pool(hidden, mask, "mean", torch.Generator())
    torch.testing.assert_close(pooled[0], hidden[0, :2].mean(dim=0))
    torch.testing.assert_close(pooled[1], hidden[1].mean(dim=0))
    torch.testing.assert_close(pool(hidden, mask, "cls", torch.Generator()), hidden[:, 0])


def test_token_pooling_never_picks_padding():
    hidden = torch.randn(64, 5, 3)
    mask = torch.zeros(64, 5, dtype=torch.long)
    mask[:, :2] = 1  # only the first two tokens are real
    pooled = pool(hidden, mask, "token", torch.Generator().manual_seed(0))
    picked = [(hidden[i, :2] == pooled[i]).all(dim=1).any().item() for i in range(64)]
    assert all(picked)


@pytest.mark.parametrize("pooling", ["mean", "cls", "token"])
def test_collection_gives_every_layer_in_input_order(tiny_bert, tiny_tokenizer, pooling):
    texts = [" ".join(f"w{(i * 7 + j) % 95}" for j in range(1 + i % 9)) for i in range(20)]
    states = collect_hidden_states(
        tiny_bert, tiny_tokenizer, texts, pooling=pooling, batch_size=6, progress=False
    )
    assert states.shape == (4, 20, 32)  # embeddings + 3 blocks
    # Each row alone (no padding at all) equals its row in the batched, length-sorted run.
    for row in (0, 5, 8):
        alone = collect_hidden_states(
            tiny_bert, tiny_tokenizer, [texts[row]], pooling=pooling, progress=False
        )
        if pooling != "token":  # token pooling draws a random position
            torch.testing.assert_close(states[:, row], alone[:, 0], atol=1e-5, rtol=1e-5)
    assert not tiny_bert.training


def test_profile_has_error_bars_from_resamples():
    hidden = torch.from_numpy(np.stack([ball(1000, 3, 8), ball(1000, 6, 8, seed=1)])).float()
    profile = estimate_id_profile(hidden, TwoNN(), n_resamples=4, progress=False)
    assert profile.resampling == "subsample"
    assert [len(layer.resampled) for layer in profile.layers] == [4, 4]
    assert all(0 < std < 1.0 for std in profile.stds)
    assert len(profile.resampled_profiles()) == 4
    without = estimate_id_profile(hidden, TwoNN(), n_resamples=0, progress=False)
    assert without.stds == [None, None] and without.dimensions == profile.dimensions


def test_resampling_schemes():
    blocks = resample_indices(10, resampling="blocks", n_resamples=3, fraction=0.5, seed=0)
    assert sorted(np.concatenate(blocks).tolist()) == list(range(10))
    with pytest.raises(ValueError, match=r"blocks of 2 .* needs at least 3"):
        resample_indices(10, resampling="blocks", n_resamples=4, fraction=0.5, seed=0)
    subsets = resample_indices(10, resampling="subsample", n_resamples=3, fraction=0.5, seed=0)
    assert [len(s) for s in subsets] == [5, 5, 5]
    with pytest.raises(ValueError, match="resampling"):
        resample_indices(10, resampling="bootstrap", n_resamples=3, fraction=0.5, seed=0)


def test_rank_sensitivity_counts_blocks_that_move(tiny_bert):
    targets = find_target_modules(tiny_bert, "bert.encoder.layer", BERT_TARGETS)
    hidden = torch.from_numpy(
        np.stack([ball(400, d, 12, seed=d) for d in (2, 4, 4, 9)])
    ).float()  # gaps ~ +2, 0, +5 between consecutive layers
    profile = estimate_id_profile(hidden, TwoNN(), n_resamples=5, progress=False)
    policy = GeLoRAPolicy()
    plan = policy.plan(targets, profile.dimensions)
    sensitivity = rank_sensitivity(policy, targets, profile, plan, n_blocks=3)
    assert sensitivity.n_resamples == 5
    # Recounted by hand: each resample's per-layer IDs planned, blocks compared with the plan's.
    main = plan.block_ranks(3)
    replans = [
        policy.plan(targets, [layer.resampled[r] for layer in profile.layers]).block_ranks(3)
        for r in range(5)
    ]
    changed = [sum(a != b for a, b in zip(ranks, main, strict=True)) for ranks in replans]
    assert sensitivity.changed_blocks_per_resample == changed
    assert any(changed)  # some resamples move a rank: there is something to count
    every = [*replans, main]
    assert sensitivity.block_rank_ranges == [
        (min(r[b] for r in every), max(r[b] for r in every)) for b in range(3)
    ]
    assert rank_sensitivity(UniformPolicy(), targets, profile, plan, 3) is None


def test_cls_pooling_reads_the_mean_at_the_embeddings_output(tiny_bert, tiny_tokenizer):
    """Layer 0's first token is the same vector for every input: no geometry to measure."""
    texts = [" ".join(f"w{(i * 5 + j) % 90}" for j in range(2 + i % 7)) for i in range(12)]
    cls = collect_hidden_states(tiny_bert, tiny_tokenizer, texts, pooling="cls", progress=False)
    mean = collect_hidden_states(tiny_bert, tiny_tokenizer, texts, pooling="mean", progress=False)
    torch.testing.assert_close(cls[0], mean[0])
    assert torch.unique(cls[0], dim=0).shape[0] > 1  # points that vary, not one vector
    assert not torch.allclose(cls[1], mean[1])  # block outputs are the [CLS] vector itself


def test_blocks_too_small_for_the_sample_actually_drawn_are_one_config_line():
    """n_samples=all or near-copy removal can leave fewer points than the config's check saw:
    the estimate stage says so, naming the key, before any estimate."""
    from gelora.errors import ConfigError
    from gelora.geometry.twonn import TwoNN
    from gelora.stages.profile import EstimatorSettings

    settings = EstimatorSettings(n_resamples=5, resampling="blocks")
    hidden = torch.randn(2, 12, 4)
    with pytest.raises(ConfigError, match=r"estimator.n_resamples=5 splits the 12 sample points"):
        settings.estimate(hidden, TwoNN(), progress=False)
    profile = EstimatorSettings(n_resamples=4, resampling="blocks").estimate(
        hidden, TwoNN(), progress=False
    )
    assert all(len(layer.resampled) == 4 for layer in profile.layers)
