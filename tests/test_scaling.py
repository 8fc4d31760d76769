"""Past one process: DDP on CPU (gloo), the joblib launcher, the SLURM launcher config."""

from __future__ import annotations

import json
import subprocess
import sys
from types import SimpleNamespace

from hydra.utils import instantiate

from gelora.data.datamodule import LengthGroupedBatches
from gelora.lora import inject_lora, lora_layers
from gelora.models import find_target_modules
from gelora.ranks import UniformPolicy
from gelora.training.module import LoRAClassifierModule
from tests.helpers import TINY, compose_train
from tests.tiny_models import BERT_TARGETS


def test_ddp_on_two_cpu_processes_shares_one_plan_and_writes_one_results(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "gelora.train",
            f"hydra.run.dir={tmp_path}",
            *TINY,
            "trainer=ddp",
            "trainer.devices=2",
            "+trainer.strategy.process_group_backend=gloo",
            "trainer.max_steps=2",
            "trainer.max_epochs=2",  # 48 examples in batches of 16: one batch per process each
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert len(list(tmp_path.rglob("results.json"))) == 1
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["status"] == "completed" and results["optimizer_steps"] == 2
    agreement = results["distributed"]
    assert agreement["world_size"] == 2
    digests = agreement["adapter_digest_per_rank"]
    assert len(digests) == 2 and digests[0] == digests[1]
    assert agreement["own_plan_matched_rank_0_per_rank"] == [True, True]
    assert (tmp_path / "train_ddp_process_1.log").exists()  # the second process really ran


def test_every_process_injects_rank_zero_plan_not_its_own(tiny_bert):
    targets = find_target_modules(tiny_bert, "bert.encoder.layer", BERT_TARGETS)
    own, rank_zero = UniformPolicy(rank=2).plan(targets), UniformPolicy(rank=3).plan(targets)
    module = LoRAClassifierModule(
        tiny_bert, rank_plan=own, num_labels=3, adapt=lambda m, plan: inject_lora(m, plan)
    )
    broadcast = SimpleNamespace(broadcast=lambda obj, src=0: rank_zero.to_dict())
    module.trainer = SimpleNamespace(strategy=broadcast)  # as a process of rank > 0 sees it
    module.__dict__["_trainer"] = module.trainer
    module.configure_model()
    assert {layer.rank for layer in lora_layers(module.model).values()} == {3}
    assert module.rank_plan == rank_zero
    assert module.plan_agreement["own_plan_matched_rank_0_per_rank"] == [False]


def test_batches_are_sharded_evenly_across_processes(monkeypatch):
    import torch.distributed as dist

    lengths = [i % 17 for i in range(103)]
    shards = []
    for rank in (0, 1):
        monkeypatch.setattr(dist, "is_initialized", lambda: True)
        monkeypatch.setattr(dist, "get_rank", lambda rank=rank: rank)
        monkeypatch.setattr(dist, "get_world_size", lambda: 2)
        sampler = LengthGroupedBatches(lengths, 8, seed=0)
        shards.append(list(sampler))
        assert len(shards[-1]) == len(sampler) == 6  # 13 batches: 6 each, the last one cut
    first = {i for batch in shards[0] for i in batch}
    second = {i for batch in shards[1] for i in batch}
    assert not first & second


def test_a_two_job_sweep_through_the_joblib_launcher(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "gelora.train",
            "-m",
            "parallel=per_core",  # the joblib launcher, one job per core, one thread each
            "hydra.launcher.n_jobs=2",
            "sweep_id=joblib",
            "seed=0,1",
            *TINY,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "Joblib.Parallel" in proc.stdout + proc.stderr
    results = sorted((tmp_path / "multirun_outputs" / "adhoc" / "joblib").rglob("results.json"))
    assert len(results) == 2
    records = [json.loads(p.read_text()) for p in results]
    assert sorted(r["seed"] for r in records) == [0, 1]
    assert all(r["status"] == "completed" for r in records)
    assert all(r["config"]["threads"] == 1 for r in records)


def test_the_slurm_launcher_config_composes_and_builds():
    cfg = compose_train(
        "hydra/launcher=submitit_slurm", "hydra.launcher.partition=gpu", hydra_config=True
    )
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("submitit_launcher.SlurmLauncher")
    assert launcher.partition == "gpu" and launcher.gpus_per_node == 1
    assert launcher.tasks_per_node == 1 and launcher.timeout_min == 240
    built = instantiate(launcher)  # no cluster needed to build it
    assert type(built).__name__ == "SlurmLauncher"
