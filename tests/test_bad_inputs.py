"""Bad input, one clear line: config, data, files and assets. Each case checks that the error
names the problem and that no results.json claiming success is left behind.

The runs are in-process (Hydra's compose API, then ``gelora.pipeline.run``), so the matrix is
cheap; the command line's one-line error and exit code are tested in test_train_end_to_end.
"""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException

from gelora.errors import AssetError, ConfigError
from tests import helpers
from tests.helpers import TINY, compose_train


def run_in_process(out_dir: Path, *overrides: str) -> dict:
    return helpers.run_in_process(out_dir, *TINY, *overrides)


def _csv(path: Path, rows: list[dict]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def _files(tmp_path: Path, rows: list[dict], problem: str = "classification") -> list[str]:
    path = _csv(tmp_path / "train.csv", rows)
    return [
        "task=from_files",
        f"task.train_file={path}",
        "task.text_fields=[text]",
        "task.label_field=label",
        f"task.problem={problem}",
        f"task.metrics=[{'pearson' if problem == 'regression' else 'accuracy'}]",
    ]


def _sentences(n: int, label=lambda i: ["pos", "neg"][i % 2]) -> list[dict]:
    words = "a warm film dull plot bright cast slow end".split()  # noqa: SIM905
    return [{"text": " ".join(words[(i + j) % 9] for j in range(4 + i % 3)) + f" {i}",
             "label": label(i)} for i in range(60)][:n]  # fmt: skip


CONFIG_CASES = [
    (["estimator.n_samples=2"], "estimator.n_samples must be an integer >= 3"),
    (["estimator.n_samples=abc"], "estimator.n_samples must be an integer >= 3 or all"),
    (["optimizer.warmup_ratio=7"], "optimizer.warmup_ratio must lie in [0, 1), got 7.0"),
    (
        ["optimizer.weight_decay=-1"],
        "optimizer.weight_decay must be a finite number >= 0, got -1.0",
    ),
    (["checkpoint_every_n_steps=0"], "checkpoint_every_n_steps must be an integer >= 1, got 0"),
    (["trainer.max_steps=0"], "trainer.max_steps must be >= 1 or -1, got 0"),
    (["estimator.pooling=max"], "estimator.pooling must be one of mean, cls, last, token"),
    (["estimator.n_resamples=1"], "estimator.n_resamples must be 0 (off) or >= 2"),
    (["method=random"], "method=random needs a budget: set budget.rank or budget.params"),
    (
        ["estimator.resampling=blocks", "estimator.n_samples=32", "estimator.n_resamples=50"],
        "estimator.n_resamples=50 splits estimator.n_samples=32 into blocks of 0 points",
    ),
    (
        ["trainer.val_check_interval=1.5"],
        "trainer.val_check_interval must be a share of an epoch in (0, 1], a number of batches "
        ">= 1, or null, got 1.5",
    ),
    (
        ["trainer.val_check_interval=100"],
        "trainer.val_check_interval=100 batches is more than the 3 training batches of an epoch",
    ),
    (
        ["task=vader_movies", "task.max_eval_samples=1"],
        "task vader_movies: the validation split has 1 row(s); pearson needs at least 2 (raise "
        "task.max_eval_samples)",
    ),
    (["estimator.resample_fraction=1.5"], "estimator.resample_fraction must lie in (0, 1)"),
    (["budget.rank=-2"], "budget.rank must be a positive integer or null, got -2"),
    (["budget.params=0"], "budget.params must be a positive integer or null, got 0"),
    (["budget.rank=2", "budget.params=1000"], "exactly one of budget.rank and budget.params"),
    (["budget.params=100"], "budget.params=100 is below one rank per adapted matrix"),
    (["rank_policy.offset=-1"], "rank_policy.offset must be >= 0, got -1"),
    (["method=lora", "rank_policy.rank=0"], "rank_policy.rank must be >= 1, got 0"),
    (["rank_policy.score=loud"], "rank_policy.score must be one of gap, id, uniform"),
    (
        ["model.target_modules=[attention.self.qeury]"],
        "unknown target module 'attention.self.qeury'",
    ),
    (["model.blocks=bert.encoder.layers"], "model.blocks='bert.encoder.layers' names no module"),
    (["task.metrics=[bleu]"], "task.metrics: 'bleu' is unknown"),
    (["task.batch_size=0"], "task.batch_size must be a positive integer, got 0"),
    (["optimizer.lr=-1"], "optimizer.lr must be a finite number > 0, got -1.0"),
    (["lora.dropout=1.5"], "lora.dropout must lie in [0, 1), got 1.5"),
    (["seed=1.5"], "seed must be an integer in [0, 4294967295], got 1.5"),
    # Non-finite rates: nan passes every comparison's negation and inf every "> 0".
    (["optimizer.lr=inf"], "optimizer.lr must be a finite number > 0, got inf"),
    (["optimizer.lr=nan"], "optimizer.lr must be a finite number > 0, got nan"),
    (["optimizer.head_lr=inf"], "optimizer.head_lr must be a finite number > 0 or null, got inf"),
    (["lora.dropout=nan"], "lora.dropout must lie in [0, 1), got nan"),
    (["lora.scale=inf"], "lora.scale must be a finite number > 0, got inf"),
    (
        ["trainer.gradient_clip_val=nan"],
        "trainer.gradient_clip_val must be a finite number >= 0 or null, got nan",
    ),
    # Seeds: Lightning's seed_everything (and numpy) take 0 .. 2**32 - 1.
    (["seed=-1"], "seed must be an integer in [0, 4294967295], got -1"),
    (
        ["seed=12345678901234567890"],
        "seed must be an integer in [0, 4294967295], got 12345678901234567890",
    ),
    (["task.split_seed=-1"], "task.split_seed must be an integer in [0, 4294967295], got -1"),
    (
        ["estimator.sample_seed=-1"],
        "estimator.sample_seed must be an integer in [0, 4294967295], got -1",
    ),
    (["task.metrics=[]"], "task.metrics must be a non-empty list of metric names, got []"),
    (
        ["estimator.n_resamples=0", "rank_policy.noise_k=1"],
        "rank_policy.noise_k=1 needs estimator.n_resamples >= 2, got 0",
    ),
    # The estimator is built from its config before any model loads, so its own arguments fail
    # first, not after the hidden states are computed.
    (["estimator.id.method=foo"], "estimator.id: method must be one of fit, mle, got 'foo'"),
    (
        ["estimator.id.discard_fraction=1.5"],
        "estimator.id: discard_fraction must lie in [0, 1), got 1.5",
    ),
    (["estimator=mle", "estimator.id.k=1"], "estimator.id: k must be an integer >= 2, got 1"),
    (["+estimator.id.nonsense=1"], "estimator.id: TwoNN.__init__() got an unexpected keyword"),
    # Without the crosscheck extra (the README's test command installs dev only), the same
    # configs stop as early, on the missing package, with the command that installs it.
    (
        ["estimator=skdim_twonn", "estimator.id.name=NoSuch"],
        "estimator.id: name: skdim.id has no estimator 'NoSuch'"
        if importlib.util.find_spec("skdim")
        else "estimator.id: skdim.id is not installed; install the cross-check extra",
    ),
    (
        ["estimator=dadapy_twonn", "estimator.id.fraction=0"],
        "estimator.id: fraction must lie in (0, 1], got 0"
        if importlib.util.find_spec("dadapy")
        else "estimator.id: dadapy is not installed; install the cross-check extra",
    ),
]

# Refused by check_config itself: the first thing a run does, before any data or model loads.
EARLY_CASES = [case for case in CONFIG_CASES if case[0][-1].split("=")[0].lstrip("+") in {
    "seed", "optimizer.lr", "optimizer.head_lr", "lora.dropout", "lora.scale",
    "trainer.gradient_clip_val", "task.split_seed", "estimator.sample_seed", "task.metrics",
    "estimator.id.method", "estimator.id.discard_fraction", "estimator.id.k",
    "estimator.id.nonsense", "estimator.id.name", "estimator.id.fraction", "rank_policy.noise_k",
    "estimator.n_resamples",
}]  # fmt: skip


# A value of the wrong type, or a key no schema has, fails when the config is composed (before any
# import of torch), naming the key: gelora.config.schema.
TYPE_CASES = [
    ("trainer.max_epochs=two", "trainer.max_epochs"),
    ("task.group_by_length=maybe", "task.group_by_length"),
    ("model.trust_remote_code=maybe", "model.trust_remote_code"),
    ("budget.rank=two", "budget.rank"),
    ("optimizer.lr=fast", "optimizer.lr"),
    ("estimator.n_resamples=1.5", "estimator.n_resamples"),
    ("optimizer.lr_warmup=0.1", "optimizer.lr_warmup"),  # a typo: no such key
]


@pytest.mark.parametrize(("override", "key"), TYPE_CASES)
def test_a_wrong_type_fails_at_compose_time_naming_the_key(override, key):
    with pytest.raises(ConfigCompositionException) as error:
        compose_train(override)
    first_line = str(error.value).splitlines()[0]
    assert key in first_line


def test_a_wrong_type_stops_the_cli_before_any_model_loads(tmp_path):
    proc = helpers.gelora_train(tmp_path / "run", "trainer.max_epochs=two", timeout=60)
    assert proc.returncode != 0
    assert "trainer.max_epochs" in proc.stderr.splitlines()[0]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "run" / "results.json").exists()


@pytest.mark.parametrize(("overrides", "message"), CONFIG_CASES, ids=lambda v: str(v)[:40])
def test_bad_config_is_one_clear_error(tmp_path, overrides, message):
    with pytest.raises(ConfigError) as error:
        run_in_process(tmp_path, *overrides)
    assert message in str(error.value)
    assert "\n" not in str(error.value)
    record = json.loads((tmp_path / "results.json").read_text())
    assert record["status"] == "failed"
    assert not (tmp_path / "checkpoints").exists()  # stopped before any training


@pytest.mark.parametrize(("overrides", "message"), EARLY_CASES, ids=lambda v: str(v)[:40])
def test_check_config_refuses_it_before_anything_loads(overrides, message):
    from gelora.config.checks import check_config

    with pytest.raises(ConfigError) as error:
        check_config(compose_train(*TINY, *overrides))
    assert message in str(error.value)


def test_a_bad_precision_is_refused_naming_its_key_before_the_id_profile(tmp_path):
    # issue 43: trainer.precision=bogus came after the ID profile and the plan, naming "trainer"
    from gelora.config.checks import check_config

    with pytest.raises(ConfigError, match=r"^trainer.precision must be one of Lightning's"):
        check_config(compose_train(*TINY, "trainer.precision=bogus"))
    for good in ("bf16-mixed", "32-true", "16"):
        check_config(compose_train(*TINY, f"trainer.precision={good}"))


def test_the_precisions_are_lightnings():
    import typing

    from lightning.fabric.connector import _PRECISION_INPUT

    from gelora.config.checks import LIGHTNING_PRECISIONS

    def values(hint) -> list:
        return [v for a in typing.get_args(hint) for v in (values(a) or [a])]

    assert {str(v) for v in values(_PRECISION_INPUT)} == set(LIGHTNING_PRECISIONS)


def test_the_seed_range_is_lightnings():
    from lightning.fabric.utilities.seed import max_seed_value, min_seed_value

    from gelora.config.checks import SEED_MAX

    assert (min_seed_value, max_seed_value) == (0, SEED_MAX)


def test_an_empty_metric_list_is_one_line_on_the_command_line(tmp_path):
    proc = helpers.gelora_train(tmp_path / "run", *TINY, "task.metrics=[]", timeout=120)
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if "error" in line]
    assert errors == [
        "gelora-train: error: task.metrics must be a non-empty list of metric names, got []"
    ]
    assert "Traceback" not in proc.stderr


def test_a_max_length_beyond_the_models_positions_is_refused_before_the_weights_load(monkeypatch):
    import transformers

    from gelora.models import ModelSpec, check_max_length

    def no_weights(*args, **kwargs):
        raise AssertionError("weights were read")

    for auto_class in ("AutoModelForSequenceClassification", "AutoModelForCausalLM"):
        monkeypatch.setattr(getattr(transformers, auto_class), "from_pretrained", no_weights)
    spec = ModelSpec(asset="all-minilm-l6-v2", pretrained=None, num_labels=2)
    with pytest.raises(ConfigError) as error:
        check_max_length(spec, 100000)
    assert str(error.value) == (
        "task.max_length must be at most 512, the positions of model all-minilm-l6-v2 "
        "(BertConfig.max_position_embeddings), got 100000"
    )
    check_max_length(spec, 512)  # the limit itself is fine


def test_position_limits_of_the_architectures():
    from transformers import BertConfig, DebertaV2Config, LlamaConfig, RobertaConfig

    from gelora.models import position_limit

    assert position_limit(BertConfig(max_position_embeddings=64)) == (64, "max_position_embeddings")
    assert position_limit(LlamaConfig(max_position_embeddings=8192))[0] == 8192
    # RoBERTa counts positions from padding_idx + 1: 514 embeddings hold 512 tokens.
    assert position_limit(RobertaConfig(max_position_embeddings=514, pad_token_id=1))[0] == 512
    # DeBERTa-v3: relative positions only (position_biased_input false): no absolute limit.
    assert position_limit(DebertaV2Config(position_biased_input=False)) is None


def test_a_run_with_a_max_length_beyond_the_models_positions_fails_naming_it(tmp_path):
    with pytest.raises(ConfigError, match=r"task\.max_length must be at most 512, .*got 100000"):
        run_in_process(tmp_path, "task.max_length=100000")
    assert not (tmp_path / "checkpoints").exists()


def test_missing_user_file_names_it(tmp_path):
    with pytest.raises(ConfigError, match=r"no_such\.csv"):
        run_in_process(tmp_path, *_files(tmp_path, _sentences(40))[:1],
                       f"task.train_file={tmp_path / 'no_such.csv'}", "task.text_fields=[text]",
                       "task.label_field=label")  # fmt: skip
    assert json.loads((tmp_path / "results.json").read_text())["status"] == "failed"


def test_missing_label_column_names_it(tmp_path):
    rows = [{"text": r["text"], "sentiment": r["label"]} for r in _sentences(40)]
    with pytest.raises(ConfigError, match="label"):
        run_in_process(tmp_path, *_files(tmp_path, rows))
    assert json.loads((tmp_path / "results.json").read_text())["status"] == "failed"


def test_a_nan_target_in_a_user_file_names_the_row(tmp_path):
    rows = _sentences(48, label=lambda i: "nan" if i == 8 else str(i % 5 - 2))
    with pytest.raises(ConfigError, match="row 9: label 'nan' is not finite"):
        run_in_process(tmp_path, *_files(tmp_path, rows, "regression"))
    assert json.loads((tmp_path / "results.json").read_text())["status"] == "failed"


def test_nan_targets_from_a_loader_are_dropped_and_counted():
    from gelora.data.cleaning import clean_task
    from gelora.data.task_data import Split, TaskData

    def split(n: int) -> Split:
        return Split([f"text {i}" for i in range(n)], [float("nan") if i % 4 == 0 else 0.5 * i
                                                       for i in range(n)])  # fmt: skip

    task = TaskData("reg", split(20), split(8), split(8), None, problem="regression")
    cleaned = clean_task(task)
    assert len(cleaned.train) == 15 and len(cleaned.test) == 6
    assert "train: dropped 5 rows with a missing or non-finite target" in cleaned.notes


def test_n_samples_is_an_upper_bound_but_an_estimate_needs_three_inputs():
    from gelora.data.task_data import Split, TaskData
    from gelora.stages.profile import IDSample, id_sample_size

    def task(n_distinct: int) -> TaskData:
        texts = [f"text {i % n_distinct}" for i in range(12)]  # repeats count once
        return TaskData("toy", Split(texts, [i % 2 for i in range(12)]), Split(texts, [0] * 12),
                        Split(texts, [1] * 12), ["a", "b"])  # fmt: skip

    assert id_sample_size(4, task(6)) == IDSample(4, 4)
    assert id_sample_size("all", task(6)) == IDSample("all", 6)
    sample = id_sample_size(2000, task(6))
    assert sample.used == 6
    assert sample.note == (
        "estimator.n_samples=2000 is more than the 6 distinct training inputs of toy: "
        "the ID sample takes all 6"
    )
    with pytest.raises(ConfigError, match="has 2 distinct training inputs; the ID estimate needs"):
        id_sample_size(2000, task(2))


def test_empty_texts_are_dropped_and_counted(tmp_path):
    rows = _sentences(48)
    for row in rows[::6]:
        row["text"] = "   "
    results = run_in_process(tmp_path, *_files(tmp_path, rows))
    assert results["status"] == "completed"
    assert any("empty text" in note for note in results["task_notes"])


def test_a_split_left_empty_is_an_error(tmp_path):
    rows = [{"text": " ", "label": ["pos", "neg"][i % 2]} for i in range(40)]
    with pytest.raises(ConfigError, match="empty"):
        run_in_process(tmp_path, *_files(tmp_path, rows))
    assert json.loads((tmp_path / "results.json").read_text())["status"] == "failed"


def test_unknown_asset_is_refused_with_the_known_names(tmp_path):
    with pytest.raises(AssetError, match="known assets"):
        run_in_process(tmp_path, "model.asset=no-such-model")
    assert json.loads((tmp_path / "results.json").read_text())["status"] == "failed"


def test_resuming_from_a_foreign_checkpoint_is_refused(tmp_path):
    import torch

    (tmp_path / "checkpoints").mkdir()
    torch.save({"state_dict": {}}, tmp_path / "checkpoints" / "last.ckpt")
    with pytest.raises(ConfigError, match="holds no rank plan"):
        run_in_process(tmp_path)


def test_secrets_never_reach_results(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", "sk-live-0123456789")
    results = run_in_process(tmp_path, "+logger_api_key=sk-live-0123456789")
    assert results["status"] == "completed"
    text = (tmp_path / "results.json").read_text()
    assert "sk-live-0123456789" not in text
    assert json.loads(text)["config"]["logger_api_key"] == "<redacted>"


@pytest.mark.parametrize(
    ("cuda_devices", "overrides", "message"),
    [
        (0, ["trainer.accelerator=gpu"], "trainer.accelerator=gpu: no CUDA device on this machine"),
        (1, ["trainer.accelerator=cuda", "trainer.devices=2"], "trainer.devices=2: this machine "
         "has 1 CUDA device(s)"),
    ],
)  # fmt: skip
def test_an_accelerator_the_machine_lacks_is_one_line_before_anything_loads(
    tmp_path, monkeypatch, cuda_devices, overrides, message
):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda_devices > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: cuda_devices)
    with pytest.raises(ConfigError) as error:
        run_in_process(tmp_path, *overrides)
    assert str(error.value).startswith(message)
    record = json.loads((tmp_path / "results.json").read_text())
    assert record["status"] == "failed" and record["task_sizes"] is None  # before the task
