"""Near-copies in the newsgroups20 ID sample, and whether dropping them moves the ID profile.

On newsgroups20 with all-MiniLM-L6-v2 the layer-0 ID was 19.0 on the 2,000-text sample but 29.8
on average over its half-samples. Near-duplicate posts (quotes, reposts) are the suspect: a few
tiny first-neighbour distances pull TwoNN's fit. This script loads the task and the backbone
through the project's own stages (the config composed from ``conf/``, as ``gelora-train`` does),
collects the sample's hidden states once, and reports

- exact copies: repeated texts after normalisation, and repeated layer-0 vectors (texts equal
  once truncated to ``task.max_length`` tokens);
- near-copies found by ``estimator.dedup=near`` at several thresholds;
- the layer-wise TwoNN profile (estimator of the config) and the mean over its half-sample
  resamples, without dedup and with it at each threshold.

Usage (CPU; the assets must be in the local cache)::

    nice -n 10 python experiments/near_duplicates.py [--out experiments/results/near_dup.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from hydra import compose, initialize_config_dir
from sklearn.base import clone

import gelora.config  # noqa: F401  (registers the schemas)
from gelora.config.build import build
from gelora.geometry.hidden_states import collect_hidden_sample
from gelora.geometry.near_duplicates import near_duplicates, text_copies
from gelora.stages.backbone import load_backbone
from gelora.stages.profile import EstimatorSettings, sample_texts
from gelora.stages.task import load_task

CONF = Path(__file__).resolve().parents[1] / "conf"
THRESHOLDS = (0.05, 0.1, 0.2, 0.3, 0.5)
SIZES = (250, 500, 1000, 1500)  # layer-0 ID against the number of points (5 subsets each)


def profile_row(hidden: torch.Tensor, estimator, settings: EstimatorSettings) -> dict:
    profile = settings.estimate(hidden, estimator, progress=False)
    return {
        "points": int(hidden.shape[1]),
        "dimensions": [round(d, 2) for d in profile.dimensions],
        "half_sample_mean": [round(float(np.mean(layer.resampled)), 2) for layer in profile.layers],
        "half_sample_std": [round(s, 2) for s in profile.stds],
        "twonn_exact_duplicates": [layer.n_dropped for layer in profile.layers],
    }


def id_by_size(points: torch.Tensor, estimator, seed: int) -> dict:
    """Mean and spread of the ID over 5 seeded subsets of each size in SIZES, and all points."""
    rng = np.random.default_rng(seed)
    rows = {}
    for size in (*SIZES, points.shape[0]):
        if size > points.shape[0]:
            continue
        draws = 1 if size == points.shape[0] else 5
        subsets = [np.sort(rng.choice(len(points), size, replace=False)) for _ in range(draws)]
        values = [
            float(clone(estimator).fit(points[torch.from_numpy(subset)]).dimension_)
            for subset in subsets
        ]
        rows[str(size)] = {"mean": round(float(np.mean(values)), 2), "values": values}
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="write the numbers as JSON here")
    parser.add_argument("--states", type=Path, default=None, help="reuse/save hidden states")
    parser.add_argument("overrides", nargs="*", default=[])
    args = parser.parse_args()
    overrides = ["task=newsgroups20", "model=minilm_l6", "paths.output_dir=unused", *args.overrides]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    settings = EstimatorSettings.from_config(cfg.estimator)
    estimator = build(cfg.estimator.id, "estimator.id")
    task = load_task(cfg.task)
    texts = sample_texts(task.train.inputs(), cfg.estimator.n_samples, settings.sample_seed)
    started = time.perf_counter()
    if args.states is not None and args.states.is_file():
        hidden = torch.load(args.states)
    else:
        backbone = load_backbone(cfg.model, task, None)
        hidden = collect_hidden_sample(
            backbone.model,
            backbone.tokenizer,
            texts,
            pooling=settings.pooling,
            tokens_per_text=settings.tokens_per_text,
            batch_size=settings.batch_size,
            max_length=cfg.task.max_length,
            seed=settings.sample_seed,
        ).states
        if args.states is not None:
            torch.save(hidden, args.states)
    collect_s = time.perf_counter() - started
    layer0 = hidden[0]
    report: dict = {
        "command": "nice -n 10 python experiments/near_duplicates.py " + " ".join(overrides),
        "texts": len(texts),
        "pooling": settings.pooling,
        "max_length": cfg.task.max_length,
        "estimator": repr(estimator),
        "hidden_states_s": round(collect_s, 1),
        "exact_text_copies_normalised": int(text_copies(texts).sum()),
        "exact_layer0_copies": int(len(texts) - torch.unique(layer0, dim=0).shape[0]),
        "profiles": {"none": profile_row(hidden, estimator, settings)},
        "dedup": {},
        "layer0_id_by_size": {"none": id_by_size(layer0, estimator, settings.sample_seed)},
    }
    for threshold in THRESHOLDS:
        found = near_duplicates(layer0, threshold, texts=texts)
        report["dedup"][str(threshold)] = found.to_dict()
        report["profiles"][f"near:{threshold}"] = profile_row(
            hidden[:, found.keep], estimator, settings
        )
        if threshold == 0.1:
            report["layer0_id_by_size"]["near:0.1"] = id_by_size(
                layer0[found.keep], estimator, settings.sample_seed
            )
        print(threshold, found.to_dict(), flush=True)
    report["total_s"] = round(time.perf_counter() - started, 1)
    text = json.dumps(report, indent=1)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
