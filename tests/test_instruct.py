"""Instruction tuning: the offline data and benchmarks, response-only loss masking with a real
chat template (SmolLM2's), the held-out loss and perplexity, IFBench's own checkers on hand-made
answers, FastChat's answer format, and tiny end-to-end runs of ``gelora-train task=alpaca_demo``
and ``gelora-generate`` on a random 2-block Llama (``model=tiny_llama``)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from gelora.data.instruction_datamodule import (
    IGNORE,
    chat_prompt,
    collate_right_padded,
    encode_chat,
)
from gelora.training.instruct_metrics import ResponseLoss, response_token_nll
from tests.helpers import run_in_process

RESULTS = Path(__file__).resolve().parents[1] / "experiments" / "results" / "instruct_cpu"
# 64 tokens: the prompt fills them in a few examples of every split (dropped, and recorded)
TINY_DECODER = ["model=tiny_llama", "debug=tiny", "task.max_length=64"]
SMALL_EVAL = ["task.ifbench_prompts=4", "task.mt_bench_questions=2", "task.max_new_tokens=4"]


@pytest.fixture(scope="module")
def tokenizer():
    """SmolLM2-135M-Instruct's tokenizer and ChatML template, read from the GGUF asset."""
    from transformers import AutoTokenizer

    from gelora.assets import asset_path

    folder = asset_path("smollm2-135m-instruct-gguf")
    loaded = AutoTokenizer.from_pretrained(folder, gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")
    assert loaded.chat_template is not None and loaded.eos_token == "<|im_end|>"
    return loaded


@pytest.fixture(scope="module")
def tiny_llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=50,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        pad_token_id=0,
    )
    return LlamaForCausalLM(config).eval()


# -- data and benchmark assets ------------------------------------------------------------------


def test_alpaca_demo_is_the_pinned_file_split_stably():
    from gelora.assets import asset_path, sha256_of
    from gelora.data.instruction_data import ASSET, FILE, FILE_SHA256, load_alpaca_demo

    assert sha256_of(asset_path(ASSET) / FILE) == FILE_SHA256
    task = load_alpaca_demo()
    assert task.problem == "instruction" and task.num_labels == 0
    assert task.sizes() == {"train": 785, "validation": 100, "test": 100}  # 14 repeats dropped
    assert task.notes[0] == "dropped 14 examples whose prompt repeats an earlier one"
    rows = [set(zip(s.texts, s.outputs, strict=True)) for s in (task.train, task.validation)]
    assert not rows[0] & rows[1] and not rows[0] & set(
        zip(task.test.texts, task.test.outputs, strict=True)
    )
    with_input = [t for t, i in zip(task.train.texts, task.train.inputs_, strict=True) if i]
    assert with_input and all("\n\n" in t for t in with_input)  # instruction, blank line, input
    again, other = load_alpaca_demo(), load_alpaca_demo(split_seed=1)
    assert again.validation.fingerprint() == task.validation.fingerprint()
    assert other.validation.fingerprint() != task.validation.fingerprint()


def test_capped_alpaca_draws_with_split_seed_not_the_training_seed():
    from gelora.stages.task import load_task
    from tests.helpers import compose_train

    caps = ["task=alpaca_demo", "task.max_train_samples=40", "task.max_eval_samples=10"]
    caps.append("paths.output_dir=.")
    tasks = [load_task(compose_train(*caps, f"seed={seed}").task) for seed in (0, 5)]
    assert tasks[0].sizes() == {"train": 40, "validation": 10, "test": 10}
    for name in ("train", "validation", "test"):
        assert getattr(tasks[0], name).fingerprint() == getattr(tasks[1], name).fingerprint()


def test_benchmark_files_are_the_pinned_ones():
    from gelora.assets import asset_path, sha256_of
    from gelora.evaluation import ifbench, mt_bench

    assert sha256_of(asset_path(ifbench.ASSET) / ifbench.DATA) == ifbench.DATA_SHA256
    assert sha256_of(asset_path(mt_bench.ASSET) / mt_bench.FILE) == mt_bench.FILE_SHA256
    prompts = ifbench.read_ifbench()
    assert len(prompts) == ifbench.N_PROMPTS == 294
    assert all(len(p.instruction_id_list) == len(p.kwargs) >= 1 for p in prompts)
    assert [p.key for p in ifbench.read_ifbench(max_prompts=3)] == [p.key for p in prompts[:3]]
    questions = mt_bench.read_questions()
    assert len(questions) == mt_bench.N_QUESTIONS == 80
    assert all(len(q.turns) == 2 for q in questions) and len({q.category for q in questions}) == 8


# -- response-only masking ----------------------------------------------------------------------


def test_only_the_response_and_its_end_of_turn_token_carry_labels(tokenizer):
    user, response = "Name a colour.\n\nPick a warm one.", "Red is a warm colour."
    example = encode_chat(tokenizer, user, response, max_length=512)
    prompt_ids = tokenizer(chat_prompt(tokenizer, user), add_special_tokens=False)["input_ids"]
    n_prompt = len(prompt_ids)
    assert example.input_ids[:n_prompt] == prompt_ids  # exactly what generation reads
    assert example.labels[:n_prompt] == [IGNORE] * n_prompt
    labelled = [i for i, label in enumerate(example.labels) if label != IGNORE]
    assert labelled == list(range(n_prompt, labelled[-1] + 1))  # one contiguous span
    kept = [example.input_ids[i] for i in labelled]
    assert [example.labels[i] for i in labelled] == kept
    assert tokenizer.decode(kept) == response + "<|im_end|>"
    assert kept[-1] == tokenizer.eos_token_id
    tail = example.input_ids[labelled[-1] + 1 :]  # ChatML's newline after <|im_end|>
    assert tail and tokenizer.decode(tail) == "\n"
    assert example.labels[labelled[-1] + 1 :] == [IGNORE] * len(tail)
    assert example.n_response_tokens == len(kept)


def test_truncation_keeps_the_prompt_and_cuts_the_response(tokenizer):
    user, response = "Count.", " ".join(str(i) for i in range(200))
    n_prompt = len(tokenizer(chat_prompt(tokenizer, user), add_special_tokens=False)["input_ids"])
    example = encode_chat(tokenizer, user, response, max_length=n_prompt + 5)
    assert len(example.input_ids) == len(example.labels) == n_prompt + 5
    assert example.n_response_tokens == 5
    short = encode_chat(tokenizer, user, response, max_length=n_prompt - 1)
    assert short.n_response_tokens == 0  # the datamodule drops such rows and counts them


def test_batches_are_right_padded_with_masked_ignored_padding():
    rows = [{"input_ids": [5, 6, 7], "labels": [IGNORE, 6, 7]}, {"input_ids": [8], "labels": [8]}]
    batch = collate_right_padded(rows, pad_token_id=0)
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["labels"].tolist() == [[IGNORE, 6, 7], [8, IGNORE, IGNORE]]


def test_the_datamodule_drops_rows_without_a_response_token_and_says_so(tokenizer, caplog):
    from gelora.data.instruction_data import InstructionSplit
    from gelora.data.instruction_datamodule import InstructionDataModule
    from gelora.data.task_data import TaskData

    split = InstructionSplit(
        ["Say hi.", "Say bye. " * 40, "Count."], ["", "", ""], ["Hi!", "Bye!", "1 2 3 " * 20]
    )
    task = TaskData("t", split, split, split, None, notes=["as loaded"], problem="instruction")
    data = InstructionDataModule(task, tokenizer, max_length=60, batch_size=2)
    with caplog.at_level("INFO", logger="gelora.data.instruction_datamodule"):
        data.setup("fit")
    assert len(data.rows["train"]) == 2 and data.dropped["train"] == 1
    answers = [
        tokenizer.decode(labels[labels != IGNORE])
        for batch in data.train_dataloader()
        for labels in batch["labels"]
    ]
    assert len(answers) == 2 and "Hi!<|im_end|>" in answers
    # the task the run records is the rows used, and its notes say what max_length did
    assert data.task.sizes() == {name: len(rows) for name, rows in data.rows.items()}
    assert data.task.sizes() == {"train": 2, "validation": 2, "test": 2}
    assert data.task.test.fingerprint() == split.subset([0, 2]).fingerprint()
    dropped = (
        "dropped 1 of 3 train, 1 of 3 validation, 1 of 3 test examples: task.max_length=60 "
        "leaves no token of their response (the prompt fills it)"
    )
    cut = "task.max_length=60 cuts the response short in 1 of 2 train, 1 of 2 validation, "
    cut += "1 of 2 test examples kept"
    assert data.task.notes == ["as loaded", dropped, cut]
    assert [r.getMessage() for r in caplog.records] == [dropped, cut]
    whole = InstructionDataModule(task, tokenizer, max_length=1000)
    whole.setup("fit")
    assert whole.task is task  # nothing dropped or cut: the task as loaded


# -- loss and perplexity ------------------------------------------------------------------------


def test_response_loss_is_token_weighted_and_perplexity_its_exp():
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 6)
    labels = torch.tensor([[IGNORE, 1, 2, IGNORE], [IGNORE, IGNORE, IGNORE, 5]])
    # by hand: position t predicts token t + 1
    log_p = torch.log_softmax(logits, dim=-1)
    by_hand = -(log_p[0, 0, 1] + log_p[0, 1, 2] + log_p[1, 2, 5]) / 3
    total, count = response_token_nll(logits, labels)
    assert count == 3 and math.isclose(total.item() / 3, by_hand.item(), rel_tol=1e-6)
    metric = ResponseLoss()
    metric.update(logits[:1], labels[:1])  # two tokens in one batch, one in the next:
    metric.update(logits[1:], labels[1:])  # the mean is over tokens, not batches
    scores = metric.compute()
    assert math.isclose(scores["response_loss"].item(), by_hand.item(), rel_tol=1e-6)
    assert math.isclose(scores["perplexity"].item(), math.exp(by_hand.item()), rel_tol=1e-5)


def test_response_loss_equals_the_models_own_causal_lm_loss(tiny_llama):
    ids = torch.randint(1, 50, (1, 9))
    labels = ids.clone()
    labels[0, :4] = IGNORE
    with torch.no_grad():
        outputs = tiny_llama(input_ids=ids, labels=labels)
    metric = ResponseLoss()
    metric.update(outputs.logits, labels)
    assert math.isclose(metric.compute()["response_loss"].item(), outputs.loss.item(), rel_tol=1e-5)


def test_the_checkpoint_is_chosen_on_the_lowest_loss():
    from gelora.kinds import kind_of
    from gelora.training.metrics import check_metrics

    metric_mode = kind_of("instruction").metric_mode
    assert metric_mode("response_loss") == metric_mode("perplexity") == "min"
    assert kind_of("classification").metric_mode("accuracy") == "max"
    check_metrics(["response_loss", "perplexity"], "instruction", 0)
    with pytest.raises(ValueError, match="instruction tuning takes"):
        check_metrics(["accuracy"], "instruction", 0)
    with pytest.raises(ValueError, match="does not fit a classification task"):
        check_metrics(["response_loss"], "classification", 2)


# -- IFBench's checkers -------------------------------------------------------------------------


def _prompt(ifbench_module, instruction_id: str):
    return next(
        p for p in ifbench_module.read_ifbench() if p.instruction_id_list == [instruction_id]
    )


def test_ifbench_checkers_pass_and_fail_hand_made_answers():
    from gelora.evaluation import ifbench

    checkers = ifbench.load_checkers()
    prompt = _prompt(ifbench, "count:keywords_multiple")
    kwargs = prompt.kwargs[0]
    words = [kwargs[f"keyword{i}"] for i in range(1, 6)]
    following = (
        " ".join(f"{word} " * times for word, times in zip(words, (1, 2, 3, 5, 7), strict=True))
        + "."
    )
    good = ifbench.score_prompt(checkers, prompt, following)
    bad = ifbench.score_prompt(checkers, prompt, f"{words[0]} only once.")
    empty = ifbench.score_prompt(checkers, prompt, "")
    assert good.strict == [True] and good.loose == [True]
    assert bad.strict == [False] and empty.strict == [False]

    # loose accepts what strict refuses: the answer with its first line (a preamble) removed
    palindrome = _prompt(ifbench, "format:no_whitespace")
    answer = "Sure, here it is:\nNoWhitespaceHere"
    verdict = ifbench.score_prompt(checkers, palindrome, answer)
    assert verdict.strict == [False] and verdict.loose == [True]

    scores = ifbench.summarize([good, bad, verdict])
    assert scores["ifbench_prompt_strict"] == pytest.approx(1 / 3)
    assert scores["ifbench_prompt_loose"] == pytest.approx(2 / 3)
    assert scores["ifbench_instruction_strict"] == pytest.approx(1 / 3)
    assert scores["ifbench_instructions"] == 3 and scores["ifbench_instructions_unscored"] == 0


def _nltk_missing(*args, **kwargs):
    """What NLTK raises when a resource is not installed (``nltk.data.find``)."""
    raise LookupError("\n" + "*" * 70 + "\n  Resource punkt_tab not found.\n  Please use ...")


def test_an_instruction_is_unscored_only_when_its_checker_raises_for_nltk_data(monkeypatch):
    """Every checker runs: one that answers before it needs NLTK data is scored."""
    import nltk

    from gelora.evaluation import ifbench

    checkers = ifbench.load_checkers()
    monkeypatch.setattr(nltk, "word_tokenize", _nltk_missing)  # as on a machine without punkt_tab
    # "the n-th sentence, as the m-th word": a one-sentence answer fails before word_tokenize
    position = _prompt(ifbench, "words:keywords_specific_position")
    short = ifbench.score_prompt(checkers, position, "One short sentence.")
    assert short.strict == [False] and short.loose == [False] and short.unscored == {}
    # the second and second-to-last word: word_tokenize first, so no verdict without its data
    words = _prompt(ifbench, "words:words_position")
    verdict = ifbench.score_prompt(checkers, words, "the of and a to in is it")
    assert verdict.strict == [None] and verdict.loose == [None]
    assert verdict.unscored == {
        "words:words_position": "needs NLTK data not on this machine: punkt_tab"
    }
    keyword = _prompt(ifbench, "count:keywords_multiple")
    scores = ifbench.summarize([verdict, short, ifbench.score_prompt(checkers, keyword, "no")])
    assert scores["ifbench_prompts_scored"] == 2 and scores["ifbench_instructions_unscored"] == 1
    assert ifbench.unscored_counts([verdict, short]) == {"words:words_position": 1}


def test_a_checker_that_breaks_is_a_checker_error_not_an_unscored_instruction(monkeypatch):
    """IndexError and KeyError are LookupErrors too; only NLTK's missing data leaves a verdict
    out."""
    from gelora.evaluation import ifbench

    checkers = ifbench.load_checkers()
    prompt = _prompt(ifbench, "count:keywords_multiple")
    checker = checkers.registry["count:keywords_multiple"]

    def broken(self, value):
        return [][1]

    monkeypatch.setattr(checker, "check_following", broken)
    verdict = ifbench.score_prompt(checkers, prompt, "an answer")
    assert verdict.strict == [False] and verdict.loose == [False] and verdict.unscored == {}
    assert verdict.errors["count:keywords_multiple"].startswith("IndexError")


def _evaluation_lib_scores(checkers, prompts, responses) -> dict[str, float]:
    """IFBench's own ``evaluation_lib`` as its ``run_eval`` calls it (strict, then loose on the
    same inputs), over the prompts on which no checker raised (here: for want of NLTK data)."""
    lib = checkers.evaluation_lib
    outputs = {"strict": [], "loose": []}
    for prompt, response in zip(prompts, responses, strict=True):
        example = lib.InputExample(
            key=prompt.key,
            instruction_id_list=list(prompt.instruction_id_list),
            prompt=prompt.prompt,
            kwargs=[dict(k) for k in prompt.kwargs],
        )
        try:
            strict = lib.test_instruction_following_strict(example, {prompt.prompt: response})
            loose = lib.test_instruction_following_loose(example, {prompt.prompt: response})
        except LookupError:
            continue
        outputs["strict"].append(strict)
        outputs["loose"].append(loose)
    scores = {}
    for mode, rows in outputs.items():
        report = lib.generate_report(rows, mode)
        scores[f"ifbench_prompt_{mode}"] = report[f"{mode}:prompt-level"]
        scores[f"ifbench_instruction_{mode}"] = report[f"{mode}:instruction-level"]
    return scores


def test_our_ifbench_scores_are_evaluation_libs_on_the_committed_lora_answers(capsys):
    """The committed instruct_cpu LoRA run's 24 answers, scored by us and by IFBench's own
    ``evaluation_lib``: the same four numbers (0.0952 prompt-level and 0.0870 instruction-level
    strict on a machine without NLTK's punkt_tab, where 3 prompts cannot be scored)."""
    from gelora.evaluation import ifbench
    from gelora.evaluation.benchmarks import IFBENCH_FILE

    answers = RESULTS / "method=lora,seed=0" / IFBENCH_FILE
    checkers = ifbench.load_checkers()
    by_key = {p.key: p for p in ifbench.read_ifbench()}
    rows = [json.loads(line) for line in answers.read_text().splitlines()]
    prompts = [by_key[row["key"]] for row in rows]
    responses = [row["response"] for row in rows]
    ours = ifbench.summarize(
        [ifbench.score_prompt(checkers, p, r) for p, r in zip(prompts, responses, strict=True)]
    )
    theirs = _evaluation_lib_scores(checkers, prompts, responses)
    capsys.readouterr()  # generate_report prints its report
    for name, value in theirs.items():
        assert ours[name] == pytest.approx(value), name
    if not ifbench._has_nltk_data("tokenizers/punkt_tab"):
        assert ours["ifbench_prompt_strict"] == pytest.approx(2 / 21)  # 0.0952
        assert ours["ifbench_instruction_strict"] == pytest.approx(2 / 23)  # 0.0870
        assert ours["ifbench_instructions_unscored"] == 3


def test_a_runs_saved_ifbench_answers_are_rescored_offline(tmp_path, capsys):
    """``python -m gelora.evaluation.ifbench RUN_DIR`` scores the saved answers again and
    updates the record, keeping the replaced scores beside the new ones."""
    import shutil

    from gelora.evaluation import ifbench
    from gelora.evaluation.benchmarks import IFBENCH_FILE

    run = tmp_path / "run"
    shutil.copytree(RESULTS / "method=lora,seed=0", run)
    before = json.loads((run / "results.json").read_text())
    before["metrics"]["test/ifbench_prompt_strict"] = 0.5  # what an older rule recorded
    (run / "results.json").write_text(json.dumps(before, indent=2) + "\n")
    assert ifbench.main([str(run)]) == 0
    assert "prompt_strict 0.5000 -> " in capsys.readouterr().out
    after = json.loads((run / "results.json").read_text())
    checkers = ifbench.load_checkers()
    verdicts = [
        ifbench.score_prompt(checkers, p, r) for p, r in ifbench.read_answers(run / IFBENCH_FILE)
    ]
    expected = ifbench.summarize(verdicts)
    for name, value in expected.items():
        assert after["metrics"][f"test/{name}"] == pytest.approx(value), name
    assert after["benchmarks"]["ifbench_unscored"] == ifbench.unscored_counts(verdicts)
    assert after["benchmarks"]["ifbench_rescored"]["before"]["ifbench_prompt_strict"] == 0.5
    assert "config" not in after  # the committed copies keep no config
    assert {k: v for k, v in after.items() if k not in ("metrics", "benchmarks")} == {
        k: v for k, v in before.items() if k not in ("metrics", "benchmarks")
    }
    rows = [json.loads(line) for line in (run / IFBENCH_FILE).read_text().splitlines()]
    assert [r["strict"] for r in rows] == [v.strict for v in verdicts]
    assert ifbench.main([str(tmp_path / "none")]) == 2


def test_the_committed_instruct_cpu_ifbench_scores_are_todays_scoring():
    """The committed records hold what the saved answers score today (on a machine without
    NLTK's punkt_tab, where they were scored)."""
    from gelora.evaluation import ifbench
    from gelora.evaluation.benchmarks import IFBENCH_FILE

    if ifbench._has_nltk_data("tokenizers/punkt_tab"):
        pytest.skip("scored without NLTK's punkt_tab; this machine has it")
    checkers = ifbench.load_checkers()
    for run in sorted(RESULTS.glob("method=*")):
        record = json.loads((run / "results.json").read_text())
        answers = ifbench.read_answers(run / IFBENCH_FILE)
        scores = ifbench.summarize([ifbench.score_prompt(checkers, p, r) for p, r in answers])
        for name, value in scores.items():
            assert record["metrics"][f"test/{name}"] == pytest.approx(value), (run.name, name)


# -- MT-Bench answers ---------------------------------------------------------------------------


def test_mt_bench_second_turns_see_the_first_answer_and_rows_are_fastchats(monkeypatch):
    from gelora.evaluation import mt_bench
    from gelora.evaluation.generation import GenerationSettings

    seen = []

    def fake_generate(model, tokenizer, conversations, settings, **kwargs):
        seen.append([list(c) for c in conversations])
        return [f"answer {len(c)}" for c in conversations]

    monkeypatch.setattr(mt_bench, "generate_answers", fake_generate)
    questions = mt_bench.read_questions(max_questions=2)
    answers = mt_bench.answer_questions(None, None, questions, GenerationSettings())
    assert answers == [["answer 1", "answer 3"]] * 2
    second = seen[1][0]
    assert [m["role"] for m in second] == ["user", "assistant", "user"]
    assert second[0]["content"] == questions[0].turns[0] and second[1]["content"] == "answer 1"
    rows = mt_bench.model_answer_rows(questions[::-1], answers, "m")
    assert [r["question_id"] for r in rows] == sorted(q.question_id for q in questions)
    for row in rows:
        assert set(row) == {"question_id", "answer_id", "model_id", "choices", "tstamp"}
        assert row["model_id"] == "m" and isinstance(row["tstamp"], float)
        assert row["choices"] == [{"index": 0, "turns": ["answer 1", "answer 3"]}]


def test_greedy_generation_pads_on_the_left_and_keeps_order(tokenizer, tiny_llama):
    """A prompt's answer does not depend on the other prompts of its batch."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from gelora.evaluation.generation import GenerationSettings, generate_answers

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = LlamaForCausalLM(config).eval()
    conversations = [[{"role": "user", "content": text}] for text in ("Hi.", "A much longer one.")]
    settings = GenerationSettings(max_new_tokens=5, batch_size=2)
    together = generate_answers(model, tokenizer, conversations, settings, progress=False)
    alone = [
        generate_answers(model, tokenizer, [c], settings, progress=False)[0] for c in conversations
    ]
    assert together == alone and all(together)


# -- end to end ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tuned_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("instruct") / "run"
    results = run_in_process(
        out, "task=alpaca_demo", *TINY_DECODER, *SMALL_EVAL, "method=lora", "budget.rank=2"
    )
    return out, results


def test_a_tiny_instruction_run_trains_tests_and_scores_ifbench(tuned_run):
    out, results = tuned_run
    assert results["status"] == "completed", results["error"]
    assert results["metric"] == "response_loss" and results["optimizer_steps"] == 3
    metrics = results["metrics"]
    assert math.isclose(
        metrics["test/perplexity"], math.exp(metrics["test/response_loss"]), rel_tol=1e-4
    )
    assert metrics["val/response_loss_best"] <= metrics["val/response_loss"] + 1e-6
    assert metrics["test/ifbench_prompts"] == 4
    for name in ("prompt_strict", "prompt_loose", "instruction_strict", "instruction_loose"):
        assert 0 <= metrics[f"test/ifbench_{name}"] <= 1
    verdicts = [
        json.loads(line) for line in (out / "ifbench_answers.jsonl").read_text().splitlines()
    ]
    assert len(verdicts) == 4 and all("response" in v and "strict" in v for v in verdicts)
    answers = (out / "mt_bench_answers.jsonl").read_text().splitlines()
    assert len(answers) == 2 and len(json.loads(answers[0])["choices"][0]["turns"]) == 2
    assert results["benchmarks"]["files"]["ifbench"].endswith("ifbench_answers.jsonl")
    config = json.loads((out / "adapter" / "adapter_config.json").read_text())
    assert config["task_type"] == "CAUSAL_LM" and not config["modules_to_save"]
    assert results["trainable_params"] == results["trainable_adapter_params"]  # no head trains


def test_the_record_counts_the_rows_trained_and_evaluated(tuned_run, tokenizer):
    """Rows that max_length leaves without a response token are not trained or evaluated on,
    and the record's sizes, row fingerprints and notes say so."""
    from gelora.stages.task import load_task
    from tests.helpers import compose_train

    _, results = tuned_run
    loaded = load_task(compose_train("task=alpaca_demo", *TINY_DECODER, "paths.output_dir=.").task)
    used, dropped = {}, {}
    for name, split in loaded.splits().items():
        keep = [
            i
            for i, (text, response) in enumerate(zip(split.texts, split.outputs, strict=True))
            if encode_chat(tokenizer, text, response, 64).n_response_tokens > 0
        ]
        used[name], dropped[name] = split.subset(keep), len(split) - len(keep)
    assert all(dropped.values()), dropped  # the test needs some rows dropped in every split
    assert results["task_sizes"] == {name: len(split) for name, split in used.items()}
    for name in ("validation", "test"):
        assert results["eval_rows"][name] == {
            "rows": len(used[name]),
            "sha256": used[name].fingerprint(),
        }
    counts = ", ".join(f"{dropped[n]} of {len(s)} {n}" for n, s in loaded.splits().items())
    assert f"dropped {counts} examples: task.max_length=64 leaves no token" in " ".join(
        results["task_notes"]
    )


def test_gelora_generate_writes_mt_bench_answers_for_a_run_and_for_the_base(tuned_run, tmp_path):
    from gelora.generate import main

    out, _ = tuned_run
    answers = tmp_path / "tuned.jsonl"
    args = ["--questions", "2", "--max-new-tokens", "3", "--out", str(answers)]
    assert main([str(out), *args]) == 0
    rows = [json.loads(line) for line in answers.read_text().splitlines()]
    assert [r["question_id"] for r in rows] == [81, 82]
    assert rows[0]["model_id"] == "tiny_llama-alpaca_demo-lora-seed0"
    base = tmp_path / "base.jsonl"
    assert main(["--base", "tiny_llama", *args, "--out", str(base)]) == 0
    assert json.loads(base.read_text().splitlines()[0])["model_id"] == "tiny_llama-base"
    assert main([str(tmp_path)]) == 2  # not a run directory


@pytest.mark.slow  # a second tiny run (about a minute): the floor's settings are the config's
def test_the_untrained_floor_takes_no_step_and_is_scored_on_the_same_rows(tuned_run, tmp_path):
    _, tuned = tuned_run
    results = run_in_process(
        tmp_path / "floor", "task=alpaca_demo", *TINY_DECODER, *SMALL_EVAL, "method=untrained"
    )
    assert results["status"] == "completed", results["error"]
    assert results["optimizer_steps"] == 0 and results["test_checkpoint"] == "final"
    assert results["eval_rows"] == tuned["eval_rows"]


def test_a_causal_lm_adapter_loads_in_peft_with_our_logits(tiny_llama, tmp_path):
    import copy

    from peft import PeftModel

    from gelora.lora import inject_lora, lora_layers
    from gelora.lora.export import save_adapter
    from gelora.models import find_target_modules
    from gelora.ranks import UniformPolicy

    targets = ["self_attn.q_proj", "self_attn.v_proj", "mlp.down_proj"]
    ours = copy.deepcopy(tiny_llama)
    plan = UniformPolicy(rank=2).plan(find_target_modules(ours, "model.layers", targets), None)
    inject_lora(ours, plan)
    with torch.no_grad():
        for layer in lora_layers(ours).values():
            layer.lora_B.weight.normal_(0, 0.1)
    directory = save_adapter(ours, plan, tmp_path / "adapter", task_type="CAUSAL_LM")
    loaded = PeftModel.from_pretrained(copy.deepcopy(tiny_llama), directory).eval()
    ids = torch.randint(1, 50, (2, 7))
    with torch.no_grad():
        difference = (loaded(input_ids=ids).logits - ours(input_ids=ids).logits).abs().max()
    assert difference.item() < 1e-5
