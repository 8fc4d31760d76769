"""Sweeps as a user runs them: every experiment config at a tiny size, failures, resuming.

Each sweep is one ``gelora-train -m`` process (Hydra's basic launcher runs its jobs in turn), on
the tiny random BERT with a few examples and steps, so the experiment files cannot drift from the
code without a test failing.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf, open_dict

from gelora.sweep_jobs import MAX_COMPONENT_BYTES, job_dirname
from gelora.table.sweep_runs import load_runs
from gelora.table.tables import markdown_table
from tests.glue_fixtures import write_glue_copy
from tests.helpers import CONF, TINY, compose_train
from tests.helpers import gelora_sweep as sweep

EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))


def grid(experiment: str) -> dict[str, list[str]]:
    cfg = compose_train(f"experiment={experiment}", hydra_config=True)
    params = OmegaConf.to_container(cfg.hydra.sweeper.params)
    return {key: str(value).split(",") for key, value in params.items()}


def chosen_rates(experiment: str) -> list[str]:
    """For a table whose learning rates come from ``conf/lr_choice/`` (step 1 of the table):
    nothing if the file exists (its rates are then checked for every row and task), else a
    stand-in rate for every row and task, so the grid can still be composed and run."""
    text = (CONF / "experiment" / f"{experiment}.yaml").read_text()
    if "/lr_choice@_global_:" not in text:
        return []
    name = text.split("/lr_choice@_global_:", 1)[1].split()[0]
    if (CONF / "lr_choice" / f"{name}.yaml").exists():
        return []
    axes = grid(experiment)
    rate = "0.001"
    if "lr_choice_key:" in text:  # a rate per budget: lr_choice.<method>.<task>.rank_<r>
        rate = "{" + ",".join(f"rank_{r}:0.001" for r in axes["budget.rank"]) + "}"
    per_task = ",".join(f"{task}:{rate}" for task in axes["task"])
    sources = compose_train(f"experiment={experiment}", "paths.output_dir=.").get("lr_source")
    names = dict.fromkeys([*axes["method"], *(sources or {}).values()])  # a shared rate's name
    rows = ",".join(f"{method}:{{{per_task}}}" for method in names)
    return [f"+lr_choice={{{rows}}}"]


# Tables that run one training seed by design, with the protocol that says why (the tasks, not the
# seeds, are the level their verdicts rest on); every other table runs at least three seeds.
ONE_SEED_BY_PROTOCOL = {
    "arena_cpu3": "experiments/results/arena_cpu3/README.md",
    "arena_cpu3_controls": "experiments/results/arena_cpu3/README.md",
}


def covering_points(axes: dict[str, list[str]]) -> list[list[str]]:
    """Grid points in which every value of every axis appears (the others at their first value):
    every config file an axis selects is composed with the experiment. Seeds and rates of a grid
    change no interpolation, so only their first value is composed. The one thing that depends on
    a pair of axes, the rate chosen for a row on a task, is checked for every pair by
    ``assert_every_row_has_its_chosen_rates`` instead of a composition per pair."""
    first = {key: values[0] for key, values in axes.items()}
    points = {tuple(f"{k}={v}" for k, v in first.items())}
    for key, values in axes.items():
        if key in ("seed", "optimizer.lr"):
            continue
        for value in values:
            points.add(tuple(f"{k}={value if k == key else v}" for k, v in first.items()))
    return [list(point) for point in sorted(points)]


def assert_every_row_has_its_chosen_rates(cfg, axes: dict[str, list[str]]) -> None:
    """``gelora_chosen_lr`` for every row x task (x budget, for a rate per budget), read from the
    composed config's ``lr_choice`` as a run of that row on that task reads it."""
    from gelora.config.lr_choice import chosen_lr

    key_pattern = cfg.get("lr_choice_key")
    budgets = axes.get("budget.rank", [None]) if key_pattern else [None]
    for method in axes.get("method", []):
        for task in axes.get("task", []):
            for rank in budgets:  # lr_choice keys are the task configs' names
                key = f"rank_{rank}" if rank is not None else None
                rate = chosen_lr(method, task, key, _root_=cfg)
                assert isinstance(rate, float) and rate > 0, (method, task, key)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_grid_point_of_every_experiment_composes(experiment):
    axes = grid(experiment)
    selection = "optimizer.lr" in axes  # a learning-rate grid runs one seed by design
    one_seed = selection or experiment in ONE_SEED_BY_PROTOCOL
    assert "seed" in axes and len(axes["seed"]) >= (1 if one_seed else 3)
    rates = chosen_rates(experiment)
    for point in covering_points(axes):
        cfg = compose_train(
            f"experiment={experiment}",
            *point,
            *rates,
            "paths.output_dir=.",
            "logger=none",
            hydra_config=True,
        )
        HydraConfig.instance().set_config(cfg)  # ${hydra:runtime.choices.method} resolves
        del cfg.hydra
        OmegaConf.resolve(cfg)  # every interpolation (per-task settings, chosen rates) resolves
        assert cfg.experiment_name == experiment
        assert isinstance(cfg.optimizer.lr, float) and cfg.optimizer.lr > 0
    if cfg.lr_sources.chosen_on_validation is not None and not selection:
        assert_every_row_has_its_chosen_rates(cfg, axes)


def test_the_covering_points_hold_every_value_of_every_axis():
    axes = {"method": ["a", "b", "c"], "task": ["x", "y"], "seed": ["0", "1", "2"]}
    points = covering_points(axes)
    assert points == [
        ["method=a", "task=x", "seed=0"],
        ["method=a", "task=y", "seed=0"],
        ["method=b", "task=x", "seed=0"],
        ["method=c", "task=x", "seed=0"],
    ]


def test_a_missing_chosen_rate_for_one_row_and_task_fails_the_check():
    experiment = "table_cpu"
    axes = grid(experiment)
    cfg = compose_train(f"experiment={experiment}", "paths.output_dir=.", hydra_config=True)
    del cfg.hydra
    task = axes["task"][-1]
    source = OmegaConf.select(cfg, f"lr_source.{axes['method'][-1]}") or axes["method"][-1]
    with open_dict(cfg):
        del cfg.lr_choice[source][task]  # one pair the covering points never compose
    with pytest.raises(ValueError, match=f"no learning rate chosen at lr_choice.{source}.{task}"):
        assert_every_row_has_its_chosen_rates(cfg, axes)


# Instruction tuning needs a decoder with a chat template: a random 2-block Llama with SmolLM2's
# tokenizer, sequences long enough for its template, and a few short generations.
TINY_DECODER = [
    "model=tiny_llama",
    "debug=tiny",
    "task.max_length=128",
    "task.ifbench_prompts=2",
    "task.mt_bench_questions=1",
    "task.max_new_tokens=2",
]


def tiny_overrides(experiment: str) -> list[str]:
    cfg = compose_train(f"experiment={experiment}", "paths.output_dir=.")
    return TINY_DECODER if cfg.task.metrics[0] == "response_loss" else TINY


def _tiny_sweep_overrides(experiment: str, tmp_path: Path) -> list[str]:
    """One seed, and the GLUE tasks read from local copies written here."""
    tiny = tiny_overrides(experiment)
    overrides = [f"experiment={experiment}", "seed=0", *tiny, *chosen_rates(experiment)]
    axes = grid(experiment)
    for key, values in axes.items():  # every row (method) runs; the other axes at one value
        if key not in ("method", "seed", "task", "budget.rank") or key == "task":
            overrides.append(f"{key}={values[0]}")
    glue = [t for t in axes.get("task", []) if t.startswith("glue_")]
    for task in glue:
        write_glue_copy(task.removeprefix("glue_"), tmp_path / "glue" / task)
    if glue:
        overrides.append(f"++task.data_dir={tmp_path / 'glue'}/${{task.name}}")
    for task in glue:  # AdaLoRA's schedules in steps are longer than a 3-step run
        overrides += [f"adalora_glue.{task}.tinit=0", f"adalora_glue.{task}.tfinal=1"]
    if "budget.rank" in axes:
        overrides.append("budget.rank=2")
    return overrides


# Tiny runs that repeat code another default test already runs, kept out of the default suite
# (each took 50-110 s of CI's 15 minutes) and run with -m slow. Every experiment's grid still
# composes in the default suite (test_every_grid_point_of_every_experiment_composes). "table_cpu's
# tiny sweep" below: its rows, each trained in the default tier there or where ROWS_RUN_ELSEWHERE
# says.
RUN_ELSEWHERE = {
    # the paper-sized GPU twins run their CPU sibling's task-kind code at a tiny size
    "instruct_gpu": "instruct_cpu's code",
    "squad_deberta": "squad_cpu's code",
    # instruct_cpu's and squad_cpu's rows train in test_instruct and test_squad
    "instruct_cpu": "test_instruct's end-to-end runs",
    "squad_cpu": "test_squad's test_every_method_runs_on_squad",
    # table_cpu_lr's rows are a subset of table_cpu's, which runs here at a tiny size
    "table_cpu_lr": "table_cpu's tiny sweep",
    # the per-budget-rate curve's rows and ranks are table_cpu_budget's
    "budget_curve": "table_cpu_budget's tiny sweep",
    "budget_curve_lr": "table_cpu_budget's tiny sweep",
    # the second CPU table's rows are table_cpu's; early stopping trains in test_early_stopping
    "table_cpu2": "table_cpu's tiny sweep and test_early_stopping",
    "table_cpu2_lr": "table_cpu's tiny sweep and test_early_stopping",
    # the third table's grid rows are two of its own rows, which run here at a tiny size
    "table_cpu3_lr": "table_cpu3's tiny sweep",
    # the arena's controls: fisher's and gradient_spectrum's shuffles run in arena_cpu's tiny
    # sweep, the new rows and lora_attention_only in test_allocators (and every shuffle's plan in
    # its emit test); the setup and rates are arena_cpu3's, which runs here at a tiny size
    "arena_cpu3_controls": "arena_cpu's and arena_cpu3's tiny sweeps and test_allocators",
}


# Rows of a default-tier tiny sweep that another default test already trains at a tiny size (the
# same method code; the experiment's own settings still compose for every row above): the default
# tier runs the experiment's other rows, the slow tier (``<experiment>-every_row``) all of them.
ROWS_RUN_ELSEWHERE = {
    "table_cpu": {
        "head_only": "table_cpu3's tiny sweep",
        "lora": "table_cpu3's tiny sweep",
        "gelora": "test_train_end_to_end and every default run",
        "gelora_budget": "test_squad's test_every_method_runs_on_squad",
        "random": "test_squad's test_every_method_runs_on_squad",
        "eva": "test_train_end_to_end and test_squad",
        "adalora": "test_train_end_to_end and test_squad",
    },
    "arena_cpu": {
        "fisher": "arena_cpu3's tiny sweep",
        "gradient_spectrum": "arena_cpu3's tiny sweep",
    },
    "glue_deberta_v3": {  # adalora is the row with GLUE settings of its own (adalora_glue)
        "lora": "table_cpu3's tiny sweep",
        "gelora": "test_catalogue_runs' GLUE copies (the default method)",
        "gelora_budget": "test_squad's test_every_method_runs_on_squad",
    },
}


def _tiny_sweep_cases() -> list:
    cases = []
    for experiment in EXPERIMENTS:
        if experiment in RUN_ELSEWHERE:
            cases.append(pytest.param(experiment, False, marks=pytest.mark.slow, id=experiment))
        elif experiment in ROWS_RUN_ELSEWHERE:
            cases.append(pytest.param(experiment, False, id=experiment))
            every_row = f"{experiment}-every_row"
            cases.append(pytest.param(experiment, True, marks=pytest.mark.slow, id=every_row))
        else:
            cases.append(pytest.param(experiment, True, id=experiment))
    return cases


@pytest.mark.parametrize(("experiment", "every_row"), _tiny_sweep_cases())
def test_every_experiment_runs_at_a_tiny_size(experiment, every_row, tmp_path):
    overrides = _tiny_sweep_overrides(experiment, tmp_path)
    axes = grid(experiment)
    if not every_row and experiment in ROWS_RUN_ELSEWHERE:
        rows = [m for m in axes["method"] if m not in ROWS_RUN_ELSEWHERE[experiment]]
        assert rows, f"{experiment}: every row runs elsewhere; move it to RUN_ELSEWHERE"
        overrides.append(f"method={','.join(rows)}")
    proc = sweep(tmp_path, *overrides)
    assert proc.returncode == 0, proc.stderr[-4000:]
    runs = load_runs(tmp_path / "multirun_outputs" / experiment / "test")
    pinned = dict(o.split("=", 1) for o in overrides if "=" in o and not o.startswith("+"))
    expected = 1
    for key, values in axes.items():  # an axis the overrides pin runs the values they name
        expected *= len(pinned[key].split(",")) if key in pinned else len(values)
    assert len(runs) == expected
    failed = [(r.run_dir, r.error) for r in runs if r.status != "completed"]
    assert not failed


def test_a_failed_job_is_recorded_the_sweep_goes_on_and_resumes(tmp_path):
    # `random` needs a budget and none is set: that job fails on purpose, the others complete.
    overrides = ["method=lora,random", "seed=0,1", *TINY]
    first = sweep(tmp_path, *overrides)
    # issue 44: a sweep with failed jobs ends with a summary and a non-zero exit status
    assert first.returncode == 1, first.stderr[-4000:]
    sweep_dir = tmp_path / "multirun_outputs" / "adhoc" / "test"
    summary = [line for line in first.stdout.splitlines() if line.startswith("sweep ")]
    assert summary == [f"sweep {Path('multirun_outputs/adhoc/test')}: 2 completed, 2 failed"]
    folders = "debug=tiny,method=random,model=tiny_bert,seed="
    assert f"  failed: {folders}0, {folders}1" in first.stdout
    runs = load_runs(sweep_dir)
    status = {(r.method, r.seed): r.status for r in runs}
    assert status == {
        ("lora", 0): "completed",
        ("lora", 1): "completed",
        ("random", 0): "failed",
        ("random", 1): "failed",
    }
    failed = next(r for r in runs if r.method == "random")
    recorded = json.loads((Path(failed.run_dir) / "results.json").read_text())
    assert "needs a budget" in recorded["error"] and "Traceback" in recorded["traceback"]
    table = markdown_table(runs)
    random_row = next(line for line in table.splitlines() if line.startswith("| random "))
    assert "2 failed" in random_row

    again = sweep(tmp_path, *overrides)  # the same sweep_id: completed jobs are skipped
    assert again.returncode == 1, again.stderr[-4000:]  # the failed ones failed again
    assert ": 2 skipped, 2 failed" in again.stdout
    assert again.stdout.count("already holds this run, completed") == 2
    assert again.stderr.count("needs a budget") == 2  # the failed ones ran again
    # Their first records were moved aside, not overwritten, and are in no table.
    assert len(list(sweep_dir.rglob("superseded/*/results.json"))) == 2
    assert len(load_runs(sweep_dir)) == 4


def test_a_short_job_folder_is_its_overrides():
    assert job_dirname("method=lora,seed=0") == "method=lora,seed=0"
    assert job_dirname("") == "defaults"


def test_long_overrides_nest_into_folders_of_whole_overrides():
    tokens = [f"key_{i:02d}=value_{'x' * 30}_{i}" for i in range(20)]
    overrides = ",".join(tokens)
    path = job_dirname(overrides)
    folders = path.split("/")
    assert len(folders) > 1
    assert all(len(folder.encode()) <= MAX_COMPONENT_BYTES for folder in folders)
    assert [t for folder in folders for t in folder.split(",")] == tokens  # every one whole
    assert path.replace("/", ",") == overrides  # the folders give the overrides back


def test_job_folders_are_stable_and_distinct():
    base = ",".join(f"axis_{i}=" + "v" * 40 for i in range(8))
    variants = [f"{base},seed={s}" for s in range(3)] + [f"lr=1e-{k},{base}" for k in range(3)]
    names = [job_dirname(v) for v in variants]
    assert names == [job_dirname(v) for v in variants]  # a resumed sweep finds its jobs
    assert len(set(names)) == len(variants)


def test_slashes_in_a_value_stay_in_one_folder_and_distinct():
    with_slash = job_dirname("++task.data_dir=/data/glue/${task.name},seed=0")
    assert with_slash == "++task.data_dir=%2Fdata%2Fglue%2F${task.name},seed=0"
    assert job_dirname("a=x/y") != job_dirname("a=x%2Fy")
    assert job_dirname("m=[a,b],seed=0").split("/") == ["m=[a,b],seed=0"]


def test_a_single_override_too_long_for_a_folder_is_shortened_with_a_hash():
    long_a, long_b = "note=" + "a" * 300, "note=" + "a" * 299 + "b"
    name_a, name_b = job_dirname(long_a), job_dirname(long_b)
    assert len(name_a.encode()) <= MAX_COMPONENT_BYTES and name_a.startswith("note=aaa")
    assert name_a != name_b


def test_each_job_says_which_of_how_many_it_is_and_folders_keep_long_overrides(tmp_path):
    note = "+note=" + "n" * 180  # a long override: the job folders nest
    proc = sweep(tmp_path, "seed=0,1", note, *TINY)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "job 1 of 2: seed=0\n" in proc.stdout and "job 2 of 2: seed=1\n" in proc.stdout
    sweep_dir = tmp_path / "multirun_outputs" / "adhoc" / "test"
    runs = load_runs(sweep_dir)
    assert sorted(r.seed for r in runs) == [0, 1] and all(r.status == "completed" for r in runs)
    for run in runs:
        folders = Path(run.run_dir).relative_to(sweep_dir).parts
        assert len(folders) == 2 and all(len(f.encode()) <= MAX_COMPONENT_BYTES for f in folders)
        assert ",".join(folders) == f"{note},debug=tiny,model=tiny_bert,seed={run.seed}"


def test_two_jobs_given_one_folder_are_said_and_the_sweep_exits_non_zero(tmp_path):
    # issue 43: with hydra.sweep.subdir=same, job 2 left no record and the sweep exited 0
    ran = sweep(tmp_path, "seed=0,1", *TINY, "hydra.sweep.subdir=same")
    assert ran.returncode == 1, ran.stderr[-3000:]
    assert "2 jobs ran into 1 job folders: jobs shared a folder" in ran.stdout


def test_a_one_seed_table_names_a_protocol_that_says_why():
    root = Path(__file__).resolve().parents[1]
    for experiment, protocol in ONE_SEED_BY_PROTOCOL.items():
        assert experiment in EXPERIMENTS
        text = (root / protocol).read_text()
        assert "training seed 0 only" in text and "level a verdict rests on" in text
