"""Every task and model of the catalogue, trained for a few steps as a user runs it.

The CLI runs (subprocesses) show ``gelora-train task=<t>`` end to end; the in-process runs compose
the same config with Hydra's compose API and call ``gelora.pipeline.run``, which skips the
interpreter start-up and keeps many tasks cheap enough for the default test run.
"""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import pytest

from gelora.data.glue import GLUE_TASKS
from tests import helpers
from tests.glue_fixtures import write_glue_copy
from tests.helpers import SMOKE, assert_not_successful, assert_scored, gelora_train

# Each task with a real model: smaller than debug=smoke, so the whole catalogue stays cheap.
CATALOGUE = [
    "task.max_train_samples=64",
    "task.max_eval_samples=48",
    "task.batch_size=16",
    "task.max_length=64",
    "estimator.n_samples=40",
    "trainer.max_steps=4",
    "trainer.val_check_interval=2",
    "trainer.accelerator=cpu",
    "trainer.enable_progress_bar=false",
    "logger=none",
]


def run_in_process(out_dir: Path, *overrides: str) -> dict:
    return helpers.run_in_process(out_dir, *CATALOGUE, *overrides)


# --- offline tasks ----------------------------------------------------------------------------


def test_cli_trains_the_regression_task(tmp_path):
    proc = gelora_train(tmp_path, *SMOKE, "task=vader_movies", "logger=none")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "test/pearson = " in proc.stdout and "test/spearman = " in proc.stdout
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["task"] == "vader_movies" and results["task_sizes"]["train"] == 240
    assert_scored(results, ["pearson", "spearman"])


@pytest.mark.parametrize(
    ("task", "metrics"),
    [
        # the default tier trains one pair task and one many-class task with macro-F1; every
        # task's rows, labels and metrics load in test_task_catalogue (no training)
        ("snli", ["accuracy"]),
        ("bbc_news", ["accuracy", "macro_f1"]),
        pytest.param("election_tweets", ["accuracy"], marks=pytest.mark.slow),
        pytest.param("book_excerpts", ["accuracy"], marks=pytest.mark.slow),
        pytest.param("friends_speaker", ["accuracy", "macro_f1"], marks=pytest.mark.slow),
        pytest.param("newsgroups20", ["accuracy", "macro_f1"], marks=pytest.mark.slow),
        pytest.param("reuters_r8", ["accuracy", "macro_f1"], marks=pytest.mark.slow),
        pytest.param("reuters_r52", ["accuracy", "macro_f1"], marks=pytest.mark.slow),
        pytest.param("vader_tweets", ["pearson", "spearman"], marks=pytest.mark.slow),
        pytest.param("vader_amazon", ["pearson", "spearman"], marks=pytest.mark.slow),
    ],
)
def test_offline_task_trains_and_reports_its_metrics(tmp_path, task, metrics):
    results = run_in_process(tmp_path, f"task={task}")
    assert results["task"] == task
    assert_scored(results, metrics)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("task", "metrics"),
    [
        ("snli", ["accuracy"]),
        ("newsgroups20", ["accuracy", "macro_f1"]),
        ("reuters_r8", ["accuracy", "macro_f1"]),
        ("bbc_news", ["accuracy", "macro_f1"]),
    ],
)
def test_cli_trains_every_offline_task(tmp_path, task, metrics):
    proc = gelora_train(tmp_path, *SMOKE, f"task={task}", "logger=none")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"test/{metrics[0]} = " in proc.stdout
    assert_scored(json.loads((tmp_path / "results.json").read_text()), metrics)


# --- models -----------------------------------------------------------------------------------


def test_minilm_l3_runs_a_gelora_fine_tune(tmp_path):
    pytest.importorskip("onnx")  # the one-time conversion reads the graph with it
    results = run_in_process(tmp_path, "model=minilm_l3")
    assert results["model"] == "minilm_l3"
    assert len(results["intrinsic_dims"]) == 4 and len(results["ranks"]) == 3 * 6
    assert_scored(results, ["accuracy"])


def tiny_mpnet_folder(folder: Path) -> Path:
    """A random 3-block MPNet (width 32) saved as a Hugging Face folder, as the real asset is
    (``MPNetForMaskedLM``, an ``MPNetTokenizer``), its vocabulary the words of ``write_user_csv``:
    ``model=mpnet_base``'s code path without its 400 MB download."""
    import torch
    from transformers import MPNetConfig, MPNetForMaskedLM, MPNetTokenizer

    words = ["<s>", "<pad>", "</s>", "<unk>", "[UNK]", "<mask>", "the", "film", "book", "show"]
    words += ["number", "was", "superb", "dreadful", "fine", *map(str, range(200))]
    torch.manual_seed(0)
    config = MPNetConfig(
        vocab_size=len(words), hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
        intermediate_size=64, max_position_embeddings=66, pad_token_id=1,
    )  # fmt: skip
    MPNetForMaskedLM(config).save_pretrained(folder)
    MPNetTokenizer(vocab={word: i for i, word in enumerate(words)}).save_pretrained(folder)
    return folder


def test_mpnet_base_runs_a_gelora_fine_tune_on_a_tiny_twin(tmp_path, monkeypatch):
    """``model=mpnet_base`` as composed (its blocks, six maps, shared inputs and head), on a tiny
    random MPNet in place of the asset: targets found, LoRA injected, ID profile of blocks + 1
    layers, a few training steps, and never a ``token_type_ids`` (MPNet has no segments and
    would ignore them without a word)."""
    from transformers import MPNetForSequenceClassification

    folder = tiny_mpnet_folder(tmp_path / "tiny-mpnet")
    train = write_user_csv(tmp_path / "train.csv", 120)
    calls: list[set[str]] = []
    forward = MPNetForSequenceClassification.forward

    def recording_forward(self, *args, **kwargs):
        calls.append(set(kwargs))
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(MPNetForSequenceClassification, "forward", recording_forward)
    results = run_in_process(
        tmp_path / "run",
        "model=mpnet_base",
        "model.asset=null",
        f"model.pretrained={folder}",
        "task=from_files",
        f"task.train_file={train}",
        "task.text_fields=[review]",
        "task.label_field=verdict",
    )
    assert results["model"] == "mpnet_base" and results["status"] == "completed"
    assert len(results["intrinsic_dims"]) == 3 + 1  # embeddings output, then each block's
    maps = ["attn.q", "attn.k", "attn.v", "attn.o"]
    maps = [f"attention.{m}" for m in maps] + ["intermediate.dense", "output.dense"]
    expected = {f"mpnet.encoder.layer.{b}.{m}" for b in range(3) for m in maps}
    assert set(results["ranks"]) == expected
    assert results["optimizer_steps"] == 4
    head = (32 * 32 + 32) + (32 * 3 + 3)  # classifier.dense and classifier.out_proj, 3 labels
    assert results["trainable_params"] == results["trainable_adapter_params"] + head
    assert calls and not [c for c in calls if "token_type_ids" in c]
    assert any("output_hidden_states" in c for c in calls)  # the ID profile's pass
    assert_scored(results, ["accuracy", "macro_f1"])


@pytest.mark.slow
def test_smollm2_runs_a_gelora_fine_tune_through_the_decoder_path(tmp_path):
    pytest.importorskip("gguf")
    proc = gelora_train(
        tmp_path,
        "model=smollm2_135m",
        "task=snli",  # a pair task: premise and hypothesis in one decoder sequence
        "task.max_train_samples=32",
        "task.max_eval_samples=16",
        "task.batch_size=4",
        "task.eval_batch_size=16",
        "task.max_length=48",
        "estimator.n_samples=24",
        "trainer.max_steps=3",
        "trainer.val_check_interval=3",
        "logger=none",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["model"] == "smollm2_135m" and results["status"] == "completed"
    assert len(results["intrinsic_dims"]) == 31  # embeddings + 30 decoder blocks
    assert len(results["ranks"]) == 30 * 7
    assert "model.layers.29.mlp.down_proj" in results["ranks"]
    assert_scored(results, ["accuracy"])


# --- GLUE on local copies ---------------------------------------------------------------------


# The default tier trains each GLUE metric and MNLI's two test sets (cola: Matthews, mrpc: F1,
# stsb: regression); every task's copy loads with its metrics in test_task_catalogue, and the
# accuracy-only tasks (and qqp, mrpc's twin) train in the slow tier.
GLUE_TRAINED_BY_DEFAULT = {"cola", "mrpc", "stsb", "mnli"}


@pytest.mark.parametrize(
    "task",
    [
        t if t in GLUE_TRAINED_BY_DEFAULT else pytest.param(t, marks=pytest.mark.slow)
        for t in sorted(GLUE_TASKS)
    ],
)
def test_glue_task_trains_on_a_local_copy(tmp_path, task):
    folder = write_glue_copy(task, tmp_path / "glue")
    results = run_in_process(
        tmp_path / "run", f"task=glue_{task}", f"task.data_dir={folder}", "task.max_eval_samples=30"
    )
    expected = {
        "cola": ["matthews"],
        "mrpc": ["accuracy", "f1"],
        "qqp": ["accuracy", "f1"],
        "stsb": ["pearson", "spearman"],
    }.get(task, ["accuracy"])
    prefixes = ("test", "test_mismatched") if task == "mnli" else ("test",)
    assert_scored(results, expected, prefixes)
    assert results["task_sizes"]["test"] == 30


def test_glue_without_the_hub_fails_clearly(tmp_path):
    proc = gelora_train(tmp_path, "task=glue_rte", "task.data_dir=/no/such/folder", "logger=none")
    assert proc.returncode != 0
    assert "task.data_dir=/no/such/folder is not a folder" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert_not_successful(tmp_path)


# --- your own files ---------------------------------------------------------------------------


def write_user_csv(path: Path, n: int, *, regression: bool = False, seed: int = 0) -> Path:
    """Short reviews whose label (or score) follows a cue word, as a user might write them."""
    rng = random.Random(seed)
    cues = {"superb": ("positive", 4.5), "dreadful": ("negative", 0.5), "fine": ("neutral", 2.5)}
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["review", "verdict"])
        for i in range(n):
            cue = list(cues)[i % 3]
            label, score = cues[cue]
            text = f"the {rng.choice(['film', 'book', 'show'])} number {i} was {cue}"
            writer.writerow([text, round(score + rng.random() - 0.5, 2) if regression else label])
    return path


def test_cli_trains_on_a_users_csv(tmp_path):
    train = write_user_csv(tmp_path / "train.csv", 120)
    test = write_user_csv(tmp_path / "test.csv", 30, seed=1)
    user = [
        "task=from_files",
        f"task.train_file={train}",
        f"task.test_file={test}",
        "task.text_fields=[review]",
        "task.label_field=verdict",
    ]  # 108 training rows: fewer than the smoke setting's n_samples=200, so all of them

    proc = gelora_train(tmp_path / "run", *SMOKE, *user, "logger=none")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "no validation_file: validation is a seeded 10%" in proc.stdout
    sample_note = "estimator.n_samples=200 is more than the 108 distinct training inputs"
    assert sample_note in proc.stdout
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["id_sample"]["used"] == 108
    assert results["id_sample"]["note"].startswith(sample_note)
    assert results["task_sizes"] == {"train": 108, "validation": 12, "test": 30}
    assert_scored(results, ["accuracy", "macro_f1"])


def test_users_csv_with_a_regression_target(tmp_path):
    train = write_user_csv(tmp_path / "scores.csv", 150, regression=True)
    results = run_in_process(
        tmp_path / "run",
        "task=from_files",
        f"task.train_file={train}",
        "task.text_fields=[review]",
        "task.label_field=verdict",
        "task.problem=regression",
        "task.metrics=[pearson,spearman]",
    )
    assert_scored(results, ["pearson", "spearman"])
    # 150 rows: seeded 10% validation and 10% test; CATALOGUE caps training at 64 rows.
    assert results["task_sizes"] == {"train": 64, "validation": 16, "test": 15}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["task.label_field=stars"], "has no column 'stars'; its columns are: review, verdict"),
        (["task.test_file=TEST"], "row 2: unknown label 'great'; known labels: negative, neutral"),
        (["task.problem=regression"], "'accuracy' is a classification metric, task is regression"),
        ([], "task.train_file is required"),
    ],
)
def test_users_bad_files_are_rejected_clearly(tmp_path, overrides, message):
    regression = "problem=regression" in " ".join(overrides)
    train = write_user_csv(tmp_path / "train.csv", 60, regression=regression)
    test = tmp_path / "test.csv"
    test.write_text("review,verdict\nit was superb,positive\nit was great,great\n")
    given = [o.replace("TEST", str(test)) for o in overrides]
    if message != "task.train_file is required":
        given = [f"task.train_file={train}", "task.text_fields=[review]", *given]
        given += [] if "label_field" in " ".join(given) else ["task.label_field=verdict"]
    proc = gelora_train(tmp_path / "run", "task=from_files", "logger=none", *given)
    assert proc.returncode != 0
    assert message in proc.stderr, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert_not_successful(tmp_path / "run")
