"""``gelora-generate`` reads a run folder that may come from someone else: what its results.json
says never chooses code or weights (no ``trust_remote_code``, no ``pretrained`` of its own), and
every argument is checked, in one line naming the flag, before anything is loaded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gelora import generate


def _catalogue_model(name: str = "tiny_llama") -> dict:
    from omegaconf import OmegaConf

    from gelora.config.schema import ModelSchema
    from gelora.train import config_dir

    path = Path(config_dir()) / "model" / f"{name}.yaml"
    merged = OmegaConf.merge(OmegaConf.structured(ModelSchema), OmegaConf.load(path))
    return OmegaConf.to_container(merged, resolve=True)


def _run_folder(root: Path, model: dict) -> Path:
    """An instruction run's folder as gelora-train leaves it: results.json and an adapter."""
    run = root / "run"
    (run / "adapter").mkdir(parents=True)
    (run / "adapter" / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA"}))
    (run / "adapter" / "adapter_model.safetensors").write_bytes(b"")
    results = {
        "status": "completed",
        "model": model["name"],
        "task": "alpaca_demo",
        "seed": 0,
        "variant": "lora",
        "config": {"model": model, "task": {"name": "alpaca_demo", "metrics": ["response_loss"]}},
    }
    (run / "results.json").write_text(json.dumps(results))
    return run


def _code_that_writes(folder: Path, marker: Path) -> None:
    """A model folder whose config points transformers at its own Python (``auto_map``): the
    module writes ``marker`` when it is imported, which ``trust_remote_code=True`` does."""
    folder.mkdir(parents=True)
    (folder / "evil_code.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('ran')\n"
        "from transformers import PretrainedConfig, PreTrainedModel, PreTrainedTokenizer\n"
        "class EvilConfig(PretrainedConfig):\n    model_type = 'evil'\n"
        "class EvilModel(PreTrainedModel):\n    config_class = EvilConfig\n"
        "class EvilTokenizer(PreTrainedTokenizer):\n    pass\n"
    )
    auto_map = {
        "AutoConfig": "evil_code.EvilConfig",
        "AutoModelForCausalLM": "evil_code.EvilModel",
        "AutoTokenizer": ["evil_code.EvilTokenizer", None],
    }
    (folder / "config.json").write_text(json.dumps({"model_type": "evil", "auto_map": auto_map}))
    (folder / "tokenizer_config.json").write_text(json.dumps({"auto_map": auto_map}))


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("gelora-generate: error: ")
    return err[0]


def test_a_records_trust_remote_code_and_pretrained_never_run_code(tmp_path, capsys):
    """A shared run folder whose results.json asks for remote code from a folder inside it."""
    marker = tmp_path / "marker"
    model = _catalogue_model()
    run = _run_folder(tmp_path, model)
    _code_that_writes(run / "evil", marker)
    model |= {"trust_remote_code": True, "pretrained": str(run / "evil"), "asset": None}
    model |= {"gguf_file": None, "random_init": None}
    record = json.loads((run / "results.json").read_text())
    record["config"]["model"] = model
    (run / "results.json").write_text(json.dumps(record))

    assert generate.main([str(run), "--questions", "1", "--max-new-tokens", "1"]) == 2
    line = _one_error_line(capsys)
    assert not marker.exists()
    assert "differs from conf/model/tiny_llama.yaml" in line
    assert all(key in line for key in ("pretrained", "trust_remote_code", "--model"))


def test_a_records_model_name_cannot_reach_outside_the_catalogue(tmp_path, capsys):
    run = _run_folder(tmp_path, _catalogue_model())
    (run / "evil.yaml").write_text("name: evil\nblocks: model.layers\ntarget_modules: [q]\n")
    record = json.loads((run / "results.json").read_text())
    record["config"]["model"]["name"] = str(Path("..") / ".." / run.relative_to(tmp_path) / "evil")
    (run / "results.json").write_text(json.dumps(record))
    assert generate.main([str(run)]) == 2
    assert "not a model of gelora's catalogue" in _one_error_line(capsys)


def test_the_model_config_is_the_catalogues_and_remote_code_only_the_users():
    model = _catalogue_model()
    results = {"config": {"model": model}}
    config, source = generate.run_model_config(results, Path("run"))
    assert config == model and source.endswith("conf/model/tiny_llama.yaml")
    config, _ = generate.run_model_config(results, Path("run"), trust_remote_code=True)
    assert config["trust_remote_code"] is True  # the user's flag, not the record's
    older = {"config": {"model": {k: v for k, v in model.items() if k != "qa_head_modules"}}}
    assert generate.run_model_config(older, Path("run"))[0] == model  # a key the record lacks

    changed = {"config": {"model": model | {"shared_inputs": []}}}
    with pytest.raises(generate.Refused, match=r"differs from .* in shared_inputs"):
        generate.run_model_config(changed, Path("run"))
    # the user's explicit --model is their decision: the record is not compared
    config, _ = generate.run_model_config(changed, Path("run"), model="tiny_llama")
    assert config == model


def test_a_catalogue_hub_id_that_is_a_local_folder_here_is_refused(tmp_path, monkeypatch):
    """transformers loads a local folder before the hub id it shadows."""
    model = _catalogue_model("smollm2_1_7b")
    assert model["pretrained"] and model["asset"] is None
    monkeypatch.chdir(tmp_path)
    (tmp_path / model["pretrained"]).mkdir(parents=True)
    with pytest.raises(generate.Refused, match="is a local path here"):
        generate.run_model_config({"config": {"model": model}}, tmp_path / "run")


def test_a_user_yaml_asking_for_remote_code_needs_the_flag(tmp_path):
    model = _catalogue_model() | {"trust_remote_code": True}
    path = tmp_path / "mine.yaml"
    path.write_text(json.dumps(model))
    with pytest.raises(generate.Refused, match="--trust-remote-code"):
        generate.run_model_config({}, tmp_path / "run", model=str(path))
    config, source = generate.run_model_config(
        {}, tmp_path / "run", model=str(path), trust_remote_code=True
    )
    assert config["trust_remote_code"] is True and source == str(path)


@pytest.fixture
def nothing_loads(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the arguments were checked")

    monkeypatch.setattr(generate, "load_base", refuse)
    monkeypatch.setattr(generate, "load_run", refuse)


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (
            ["--base", "tiny_llama", "--max-new-tokens", "-5"],
            "--max-new-tokens must be >= 1, got -5",
        ),
        (["--base", "tiny_llama", "--batch-size", "0"], "--batch-size must be >= 1, got 0"),
        (["--base", "tiny_llama", "--questions", "81"], "--questions must be 0 to 80, got 81"),
        (["--base", "tiny_llama", "--ifbench-prompts", "-1"], "--ifbench-prompts must be 0 to 294"),
        (["--base", "tiny_llama", "--questions", "0"], "nothing to do"),
        (["--base", "tiny_llama", "--threads", "0"], "--threads must be >= 1, got 0"),
        (["--base", "no_such_model"], "--base: no model config conf/model/no_such_model.yaml"),
        (["--base", "../tiny_llama"], "--base: no model config"),
        (["--base", "tiny_llama", "--model", "tiny_llama"], "--model goes with a run directory"),
    ],
)
def test_every_argument_is_checked_before_anything_loads(args, named, capsys, nothing_loads):
    assert generate.main(args) == 2
    assert named in _one_error_line(capsys)


def test_paths_are_checked_before_anything_loads(tmp_path, capsys, nothing_loads):
    run = _run_folder(tmp_path, _catalogue_model())
    assert generate.main([str(tmp_path / "nowhere")]) == 2
    assert "no such run directory" in _one_error_line(capsys)
    assert generate.main([str(tmp_path)]) == 2  # a folder without results.json
    assert "holds no results.json" in _one_error_line(capsys)
    assert generate.main([str(run), "--out", str(tmp_path)]) == 2
    assert "--out: " in _one_error_line(capsys)
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    assert generate.main([str(run), "--out", str(blocker / "answers.jsonl")]) == 2
    assert "--out: " in _one_error_line(capsys)
    assert generate.main([str(run), "--model", str(tmp_path / "none.yaml")]) == 2
    assert "--model: " in _one_error_line(capsys)
