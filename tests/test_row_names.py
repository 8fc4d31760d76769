"""One group names a table row: ``conf/method/`` (a rank policy and its budget). Run folders,
wandb names and tables use its option, so ``gelora`` and ``gelora_budget`` never share a name;
the old ``rank_policy=X`` spelling is read as ``method=X``, said in one line."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

from gelora.train import renamed_group_overrides
from tests.helpers import CONF, compose_train


def _resolved(*overrides: str):
    cfg = compose_train(*overrides, "paths.output_dir=.", "logger=wandb", hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    run_dir = OmegaConf.to_container(cfg.hydra.run, resolve=True)["dir"]
    logger = OmegaConf.to_container(cfg.logger, resolve=True)["wandb"]
    return run_dir, logger["name"], logger["job_type"]


def test_run_folders_and_wandb_names_use_the_method_option():
    run_dir, name, job_type = _resolved("method=gelora_budget")
    assert "/gelora_budget/" in run_dir and name.endswith("-gelora_budget-s0")
    assert job_type == "gelora_budget"
    other_dir, other_name, _ = _resolved()  # the default row: method=gelora
    assert "/gelora/" in other_dir and other_name.endswith("-gelora-s0") and other_name != name


def test_every_method_file_holds_its_whole_rank_policy():
    assert not (Path(CONF) / "rank_policy").exists()  # one group per role: the row
    for option in sorted(p.stem for p in (Path(CONF) / "method").glob("*.yaml")):
        cfg = compose_train(f"method={option}", "paths.output_dir=.")
        assert str(cfg.rank_policy._target_).startswith("gelora."), option


@pytest.mark.parametrize(
    ("given", "read"),
    [
        (["rank_policy=lora", "budget.rank=2"], ["method=lora", "budget.rank=2"]),
        (["rank_policy=lora,gelora_budget"], ["method=lora,gelora_budget"]),
        (["rank_policy.rank=4", "method=lora"], ["rank_policy.rank=4", "method=lora"]),
    ],
)
def test_the_old_group_spelling_is_read_as_the_method(given, read, capsys):
    assert renamed_group_overrides(given, "gelora-train") == read
    said = capsys.readouterr().err
    assert ("rank_policy=X is method=X" in said) == (given != read)


def test_the_old_spelling_beside_a_different_method_is_refused_in_one_line(capsys):
    # issue 43: `method=gelora rank_policy=lora` trained and recorded lora
    with pytest.raises(SystemExit) as stop:
        renamed_group_overrides(["method=gelora", "rank_policy=lora"], "gelora-train")
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "method=gelora and rank_policy=lora both name the table row" in err
    # the same row twice is no conflict
    assert renamed_group_overrides(["method=lora", "rank_policy=lora"], "gelora-train") == [
        "method=lora"
    ]


def test_an_unquoted_value_with_spaces_is_one_line_and_leaves_no_folder(tmp_path):
    # issue 43: `hydra.run.dir=outputs/my run é` (unquoted) gave Hydra's parser error and left
    # an empty outputs/my behind
    from gelora.train import cli
    from tests.helpers import run_console_script

    ran = run_console_script(
        cli, ["gelora-train", "hydra.run.dir=outputs/my", "run", "é"], cwd=tmp_path
    )
    assert ran.returncode == 2
    assert ran.stderr.count("\n") == 1 and "cannot read 'run' as key=value" in ran.stderr
    assert not (tmp_path / "outputs").exists()


def test_hydras_value_flags_are_not_read_as_overrides():
    from gelora.train import refuse_unparsable_overrides

    refuse_unparsable_overrides(["--cfg", "job", "-m", "seed=0,1", "--info", "a=1"], "x")


def test_ctrl_c_while_a_run_draws_its_figures_is_one_line_and_recorded(tmp_path, monkeypatch):
    # issue 43: Ctrl-C while a job drew its figures gave a ~100-line traceback through matplotlib
    import json

    import gelora.pipeline
    from gelora.train import cli
    from tests.helpers import TINY, run_console_script

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(gelora.pipeline, "write_plan_outputs", interrupted)
    ran = run_console_script(cli, ["gelora-train", f"hydra.run.dir={tmp_path}", *TINY])
    assert ran.returncode == 130 and "Traceback" not in ran.stderr + ran.stdout
    assert "gelora-train: interrupted (Ctrl-C)" in ran.stderr + ran.stdout
    assert json.loads((tmp_path / "results.json").read_text())["status"] == "interrupted"
