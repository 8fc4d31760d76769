"""The field's allocators (weight spectrum, Hessian trace, importance) and the matrix-type control:
their statistics on hand-checked cases, their plans within the budget, their shuffled controls,
the score draws and plan-stability seeds, and each row end to end from its conf/method file."""

from __future__ import annotations

import copy
import math
from collections import Counter

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from gelora.models import find_target_modules
from gelora.ranks import (
    Budget,
    FisherAllocator,
    HessianTraceAllocator,
    ImportanceAllocator,
    MatrixTypePolicy,
    ShuffledPolicy,
    TargetModule,
    WeightSpectrumAllocator,
    rank_unit,
)
from gelora.ranks.hessian import hutchinson_traces
from gelora.ranks.matrix_types import matrix_type
from gelora.ranks.scoring_inputs import HEAD_SEED, draw_batches, redraw_head
from gelora.ranks.weight_spectrum import fit_power_law, ks_distance, mp_spikes, power_law_alpha
from tests.helpers import TINY, compose_train, gelora_train, run_in_process
from tests.test_gradient_allocators import HEAD, RELATIVE, _own_cache  # noqa: F401


def _train_batches(n: int = 16, batch_size: int = 4):
    generator = torch.Generator().manual_seed(3)
    rows = [
        {
            "input_ids": torch.randint(5, 100, (8,), generator=generator),
            "attention_mask": torch.ones(8, dtype=torch.long),
            "labels": torch.tensor(i % 3),
        }
        for i in range(n)
    ]

    def collate(batch):
        return {key: torch.stack([row[key] for row in batch]) for key in batch[0]}

    return lambda: DataLoader(rows, batch_size=batch_size, shuffle=True, collate_fn=collate)


def _prepared(allocator, model, budget):
    targets = find_target_modules(model, "bert.encoder.layer", RELATIVE)
    allocator.use_head(HEAD)
    allocator.prepare(model, _train_batches(), targets, budget)
    return targets


def _as_scored(model):
    """A copy of ``model`` as the allocators score it: eval, the head redrawn with HEAD_SEED."""
    twin = copy.deepcopy(model).eval()
    redraw_head(twin, HEAD, HEAD_SEED)
    return twin


# --- weight spectrum -----------------------------------------------------------------------


def test_the_power_law_mle_is_clausets_formula():
    # 1 + n / sum log(x / xmin) over [1, e, e^2], xmin = 1: 1 + 3 / (0 + 1 + 2) = 2
    assert power_law_alpha(np.array([1.0, math.e, math.e**2]), 1.0) == pytest.approx(2.0)
    # below xmin is left out: [0.5, 1, e] with xmin 1 -> 1 + 2 / 1 = 3
    assert power_law_alpha(np.array([0.5, 1.0, math.e]), 1.0) == pytest.approx(3.0)


def test_the_ks_distance_against_a_hand_computed_cdf():
    # tail [1, 2], xmin 1, alpha 2: P(x) = 1 - 1/x -> P(1) = 0, P(2) = 0.5; the empirical CDF
    # steps 0 -> 0.5 -> 1: gaps |0.5 - 0| at 1, |1 - 0.5| at 2 -> 0.5
    assert ks_distance(np.array([1.0, 2.0]), 1.0, 2.0) == pytest.approx(0.5)


def test_the_fit_recovers_the_exponent_of_a_pareto_sample():
    generator = np.random.default_rng(0)
    alpha = 3.0  # density ~ x^-3 above 1: x = (1 - u)^(-1 / (alpha - 1))
    sample = (1 - generator.random(5000)) ** (-1 / (alpha - 1))
    fitted, xmin = fit_power_law(sample)
    assert fitted == pytest.approx(alpha, abs=0.15)
    assert xmin >= 1.0


def test_mp_spikes_count_the_singular_values_above_the_bulk_edge():
    generator = torch.Generator().manual_seed(0)
    noise = torch.randn(400, 200, generator=generator, dtype=torch.float64)
    assert mp_spikes(noise) == 0  # the largest singular value of noise sits at the edge
    u = torch.linalg.qr(torch.randn(400, 2, generator=generator, dtype=torch.float64))[0]
    v = torch.linalg.qr(torch.randn(200, 2, generator=generator, dtype=torch.float64))[0]
    spiked = noise + u @ torch.diag(torch.tensor([100.0, 80.0], dtype=torch.float64)) @ v.T
    assert mp_spikes(spiked) == 2  # edge: sigma (sqrt(400) + sqrt(200)) ~ 1.1 x 34 < 80


def test_weight_spectrum_scores_each_matrix_by_its_own_alpha(tiny_bert):
    allocator = WeightSpectrumAllocator(cache=False)
    budget = Budget(rank=3)
    targets = _prepared(allocator, tiny_bert, budget)
    weight = tiny_bert.get_submodule(targets[4].name).weight
    values = np.sort(np.linalg.svd(weight.detach().double().numpy(), compute_uv=False) ** 2)
    assert allocator.target_scores[targets[4].name] == pytest.approx(fit_power_law(values)[0])
    assert allocator.summary()["batches"] == 0  # the weights alone
    plan = allocator.plan(targets, None, budget)
    assert len({plan.ranks[t.name] for t in targets if t.block == 0}) > 1  # across matrices


# --- Hessian trace -----------------------------------------------------------------------------


def test_hutchinson_is_exact_on_a_diagonal_hessian_and_splits_by_matrix():
    first = torch.tensor([1.0, 2.0], requires_grad=True)
    second = torch.tensor([[3.0, -1.0]], requires_grad=True)
    # loss = 0.5 (2 a0^2 + 3 a1^2) + 0.5 (5 b0^2 + 7 b1^2): H = diag(2, 3, 5, 7)
    loss = 0.5 * (torch.tensor([2.0, 3.0]) * first**2).sum()
    loss = loss + 0.5 * (torch.tensor([[5.0, 7.0]]) * second**2).sum()
    traces = hutchinson_traces(loss, [first, second], 3, torch.Generator().manual_seed(0))
    assert traces == pytest.approx([5.0, 12.0])  # v_i^2 = 1: exact for every probe


def test_hutchinson_is_unbiased_on_a_full_hessian():
    a = torch.tensor([[4.0, 1.0, -2.0], [1.0, 3.0, 0.5], [-2.0, 0.5, 2.0]])
    w = torch.tensor([0.3, -0.2, 0.1], requires_grad=True)
    loss = 0.5 * w @ a @ w
    traces = hutchinson_traces(loss, [w], 4000, torch.Generator().manual_seed(1))
    # v^T A v = tr(A) + 2 sum_{i<j} A_ij v_i v_j: the cross terms average out
    assert traces[0] == pytest.approx(9.0, abs=0.15)


def test_the_hessian_allocator_sums_its_matrices_traces_per_block(tiny_bert):
    allocator = HessianTraceAllocator(probes=2, batches=1, cache=False)
    budget = Budget(rank=3)
    targets = _prepared(allocator, tiny_bert, budget)
    scores = allocator.target_scores
    assert all(s >= 0 for s in scores.values())
    blocks = allocator.block_scores(targets)
    assert blocks[1] == pytest.approx(sum(scores[t.name] for t in targets if t.block == 1))
    summary = allocator.summary()
    assert summary["probes"] == 2 and summary["negative_trace"] == "counts as 0"
    plan = allocator.plan(targets, None, budget)
    assert plan.notes[-1].startswith("hessian_trace (probes=2): block scores ")
    assert budget.n_params(targets) - rank_unit(targets) < plan.trainable_adapter_params
    assert plan.trainable_adapter_params <= budget.n_params(targets)


# --- importance ----------------------------------------------------------------------------


def test_importance_is_the_mean_abs_weight_times_gradient(tiny_bert):
    allocator = ImportanceAllocator(batches=2, cache=False)
    targets = _prepared(allocator, tiny_bert, Budget(rank=2))
    by_hand = _as_scored(tiny_bert)
    name = targets[3].name  # block 0's attention output
    weight = by_hand.get_submodule(name).weight
    values = []
    for batch in draw_batches(_train_batches(), 0, 2):
        logits = by_hand(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        (grad,) = torch.autograd.grad(F.cross_entropy(logits.logits, batch["labels"]), [weight])
        values.append(float((weight.detach().double() * grad.double()).abs().mean()))
    assert allocator.target_scores[name] == pytest.approx(sum(values) / 2, rel=1e-6)
    assert allocator.per == "matrix"


# --- draws, stability, shuffles ----------------------------------------------------------------


def test_score_draws_average_the_draws_scores(tiny_bert):
    single = []
    for seed in (4, 5):
        allocator = FisherAllocator(batches=1, seed=seed, cache=False)
        _prepared(allocator, tiny_bert, Budget(rank=2))
        single.append(allocator.target_scores)
    averaged = FisherAllocator(batches=1, seed=4, score_draws=2, cache=False)
    _prepared(averaged, tiny_bert, Budget(rank=2))
    for name, score in averaged.target_scores.items():
        assert score == pytest.approx((single[0][name] + single[1][name]) / 2, rel=1e-9)
    assert [d["seed"] for d in averaged.summary()["draws"]] == [4, 5]


def test_stability_seeds_record_one_plan_per_disjoint_set_of_draws(tiny_bert):
    budget = Budget(rank=4)
    allocator = ImportanceAllocator(batches=1, seed=0, score_draws=2, stability_seeds=5)
    targets = _prepared(allocator, tiny_bert, budget)
    record = allocator.summary()["plan_draws"]
    assert record["first_seeds"] == [0, 2, 4, 6, 8]
    assert record["extra_score_computations"] == 8
    plan = allocator.plan(targets, None, budget)
    assert record["ranks"][0] == [plan.ranks[t.name] for t in targets]  # the first is the run's
    third = ImportanceAllocator(batches=1, seed=4, score_draws=2)  # draws 4 and 5, cached
    _prepared(third, tiny_bert, budget)
    assert record["ranks"][2] == [third.plan(targets, None, budget).ranks[t.name] for t in targets]
    assert record["distinct_plans"] == len({tuple(r) for r in record["ranks"]})
    control = ShuffledPolicy(allocator=ImportanceAllocator(batches=1, stability_seeds=2), seed=1)
    _prepared(control, tiny_bert, budget)
    control.plan(targets, None, budget)
    summary = control.summary()  # the allocator's draws, unpermuted: not this row's plans
    assert "plan_draws" not in summary and len(summary["allocator_plan_draws"]["ranks"]) == 2


@pytest.mark.parametrize(
    "make",
    [
        lambda: WeightSpectrumAllocator(cache=False),
        lambda: ImportanceAllocator(batches=2, cache=False),
        lambda: HessianTraceAllocator(probes=1, batches=1, cache=False),
    ],
)
def test_each_allocator_has_its_shuffled_control(tiny_bert, make):
    budget = Budget(rank=5)
    allocator = make()
    targets = _prepared(allocator, tiny_bert, budget)
    original = allocator.plan(targets, None, budget)
    control = ShuffledPolicy(allocator=make(), seed=2)
    assert control.name == f"{allocator.name}_shuffled"
    assert control.prepare_timing == allocator.prepare_timing == f"{allocator.name}_s"
    _prepared(control, tiny_bert, budget)
    shuffled = control.plan(targets, None, budget)
    assert Counter(shuffled.ranks.values()) == Counter(original.ranks.values())
    assert shuffled.trainable_adapter_params == original.trainable_adapter_params
    assert shuffled.ranks != original.ranks


# --- matrix types ------------------------------------------------------------------------------


def test_matrix_types_are_read_from_the_names_within_the_block():
    named = {
        "bert.encoder.layer.0.attention.self.query": "attention",
        "bert.encoder.layer.0.attention.output.dense": "attention",
        "bert.encoder.layer.0.output.dense": "mlp",
        "bert.encoder.layer.0.intermediate.dense": "mlp",
        "model.layers.0.self_attn.o_proj": "attention",
        "model.layers.0.mlp.down_proj": "mlp",
        "mpnet.encoder.layer.0.attention.attn.q": "attention",
    }
    for name, kind in named.items():
        assert matrix_type(TargetModule(name, 0, 4, 4)) == kind


def _bert_like_targets(n_blocks: int = 2) -> list[TargetModule]:
    shapes = [(32, 32)] * 4 + [(32, 64), (64, 32)]
    return [
        TargetModule(f"enc.layer.{b}.{relative}", b, i, o)
        for b in range(n_blocks)
        for relative, (i, o) in zip(RELATIVE, shapes, strict=True)
    ]


def test_attention_only_and_mlp_only_spend_the_same_budget_by_hand():
    targets = _bert_like_targets()
    budget = Budget(rank=2)  # 2 blocks x (4 x 64 + 2 x 96) x 2 = 1,792 parameters
    assert budget.n_params(targets) == 1792
    attention = MatrixTypePolicy(["attention"]).plan(targets, None, budget)
    # 8 attention matrices at 64 per rank: rank 3 costs 1,536; 256 left = 4 more rank units
    assert [attention.ranks.get(t.name, 0) for t in targets] == [4, 4, 4, 4, 0, 0, 3, 3, 3, 3, 0, 0]
    assert attention.trainable_adapter_params == 1792
    assert (
        "rank 3 on 8 of 12 matrices (4 of them one rank more), 1,792 parameters"
        in (attention.notes[-1])
    )
    mlp = MatrixTypePolicy("mlp").plan(targets, None, budget)
    # 4 MLP matrices at 96 per rank: rank 4 costs 1,536; 256 left = 2 more units (192), 64 unspent
    assert [mlp.ranks.get(t.name, 0) for t in targets] == [0, 0, 0, 0, 5, 5, 0, 0, 0, 0, 4, 4]
    assert mlp.trainable_adapter_params == 1728 and mlp.policy == "lora_mlp_only"


def test_matrix_type_refusals_name_the_key():
    with pytest.raises(ValueError, match=r"rank_policy\.types must name some of attention, mlp"):
        MatrixTypePolicy(["ffn"])
    with pytest.raises(ValueError, match="below one rank on each of the 4 mlp matrices"):
        MatrixTypePolicy("mlp").plan(_bert_like_targets(), None, Budget(params=100))


# --- rows end to end ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("probes", 0, "rank_policy.probes must be an integer >= 1, got 0"),
        ("score_draws", 0, "rank_policy.score_draws must be an integer >= 1, got 0"),
        ("per", "layer", "rank_policy.per must be one of block, matrix, got 'layer'"),
    ],
)
def test_bad_allocator_settings_are_one_line_before_any_model_loads(tmp_path, key, value, message):
    done = gelora_train(
        tmp_path / "run", "method=hessian_trace", f"rank_policy.{key}={value}", "budget.rank=2",
        "logger=none", *TINY,
    )  # fmt: skip
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert [line for line in done.stderr.splitlines() if message in line]


def test_the_new_rows_run_end_to_end(tmp_path):
    common = ["budget.rank=2", "logger=none", "rank_policy.cache=false", *TINY]
    rows = {
        "weight_spectrum": "weight_spectrum_s",
        "importance": "importance_s",
        "hessian_trace": "hessian_trace_s",
    }
    for row, timing in rows.items():
        extra = ["rank_policy.probes=1", "rank_policy.batches=1"] if row == "hessian_trace" else []
        done = run_in_process(tmp_path / row, f"method={row}", *common, *extra)
        assert done["status"] == "completed" and timing in done["timings"]
        assert done["method_summary"]["allocator"] == row
        assert done["planned_adapter_params"] <= done["budget_params"]
    attention = run_in_process(tmp_path / "attention", "method=lora_attention_only", *TINY,
                               "budget.rank=2", "logger=none")  # fmt: skip
    assert attention["status"] == "completed"
    assert any("attention only: rank" in note for note in attention["rank_plan_notes"])


@pytest.mark.parametrize("row", ["importance", "weight_spectrum_shuffled", "lora_mlp_only"])
def test_gelora_plan_emits_every_allocators_plan(tmp_path, row):
    """46.6: the allocators that score the model plan in gelora-plan (batches from the task's
    training split) as in training, and their plans are emitted like any other."""
    import yaml
    from peft import LoraConfig

    from gelora.plan.emit import Emit, PlanOptions
    from gelora.plan.lora_config import plan_from_config

    emits = (Emit("peft-bench", tmp_path / "bench"), Emit("axolotl", tmp_path / "ax.yaml"))
    cfg = compose_train(*TINY, f"method={row}", "budget.rank=2", "estimator.cache=false",
                        f"paths.output_dir={tmp_path}")  # fmt: skip
    run = plan_from_config(cfg, tmp_path / "plan", PlanOptions(False, emits))
    plan = run.plan.plan
    assert plan.policy == row and plan.trainable_adapter_params <= run.plan.budget_params
    experiments = sorted((tmp_path / "bench" / "experiments" / "lora").iterdir())
    assert [e.name.split("-")[2] for e in experiments] == [row, row]
    config = LoraConfig.from_pretrained(experiments[0])
    emitted = {name: config.rank_pattern.get(name, config.r) for name in config.target_modules}
    assert Counter(emitted.values()) == Counter(plan.ranks.values())
    assert yaml.safe_load((tmp_path / "ax.yaml").read_text())["lora_target_modules"]


def test_gelora_plan_plans_a_scoring_allocator_as_training_does(tmp_path):
    from gelora.plan.lora_config import plan_from_config

    overrides = [*TINY, "method=importance", "budget.rank=2", "rank_policy.cache=false"]
    cfg = compose_train(*overrides, "estimator.cache=false", f"paths.output_dir={tmp_path}")
    planned = plan_from_config(cfg, tmp_path / "plan").plan.plan
    trained = run_in_process(tmp_path / "train", *overrides, "logger=none")
    assert trained["ranks"] == planned.ranks
