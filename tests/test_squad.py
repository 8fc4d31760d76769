"""Extractive QA on SQuAD v1.1: the data, the windows and their offsets, span decoding, the
official EM/F1, and tiny end-to-end runs (``task=squad model=tiny_bert debug=tiny``)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from gelora.data.qa_data import Answer, QASplit, split_by_title, subsample_questions
from gelora.data.qa_windows import OUTSIDE, Windows, best_answers, best_span, make_windows
from gelora.training.qa_metrics import (
    SpanLogits,
    exact_match,
    normalize_answer,
    squad_scores,
    token_f1,
)
from tests.helpers import TINY, run_in_process


@pytest.fixture(scope="module")
def squad():
    from gelora.data.squad import load_squad

    return load_squad()


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from gelora.assets import asset_path

    return AutoTokenizer.from_pretrained(str(asset_path("all-minilm-l6-v2")))


def one_question(context: str, answer: str, question: str = "where?") -> QASplit:
    start = context.index(answer)
    return QASplit(["q"], ["t"], [question], [context], [(Answer(answer, start),)])


def answer_texts(split: QASplit, windows: Windows) -> dict[int, list[str]]:
    """Per question, the context text of each window's target span (windows with the answer)."""
    found: dict[int, list[str]] = {}
    for window in range(len(windows)):
        start, end = windows.start_positions[window], windows.end_positions[window]
        offsets = windows.offsets[window]
        if offsets[start, 0] == OUTSIDE:  # the [CLS] target: the answer is not in this window
            continue
        example = int(windows.example_index[window])
        found.setdefault(example, []).append(
            split.contexts[example][offsets[start, 0] : offsets[end, 1]]
        )
    return found


# -- data ---------------------------------------------------------------------------------------


def test_squad_files_are_the_official_ones(squad):
    from gelora.assets import asset_path, sha256_of
    from gelora.data.squad import ASSET, FILES

    folder = asset_path(ASSET)
    for name, digest in FILES.items():
        assert sha256_of(folder / name) == digest
    assert len(squad.train) + len(squad.validation) == 87_599
    assert len(squad.test) == 10_570 and len(set(squad.test.titles)) == 48
    assert len(set(squad.train.titles) | set(squad.validation.titles)) == 442


def test_squad_splits_hold_out_whole_articles_and_are_stable(squad):
    from gelora.data.squad import load_squad

    assert squad.sizes() == {"train": 82_903, "validation": 4_696, "test": 10_570}
    assert squad.problem == "extractive_qa" and squad.num_labels == 2 and squad.is_pair_task
    assert not set(squad.train.titles) & set(squad.validation.titles)
    assert not set(squad.train.contexts) & set(squad.validation.contexts)
    assert min(len(a) for a in squad.test.answers) >= 1 and max(map(len, squad.test.answers)) > 1
    again, other = load_squad(), load_squad(split_seed=1)
    assert again.validation.fingerprint() == squad.validation.fingerprint()
    assert other.validation.fingerprint() != squad.validation.fingerprint()


def test_capped_squad_draws_questions_with_split_seed():
    from gelora.stages.task import load_task
    from tests.helpers import compose_train

    caps = ["task=squad", "task.max_train_samples=40", "task.max_eval_samples=20"]
    caps.append("paths.output_dir=.")
    tasks = [load_task(compose_train(*caps, f"seed={seed}").task) for seed in (0, 7)]
    other = load_task(compose_train(*caps, "task.split_seed=1").task)
    assert tasks[0].sizes() == {"train": 40, "validation": 20, "test": 20}
    for name in ("train", "validation", "test"):
        first = getattr(tasks[0], name).fingerprint()
        assert first == getattr(tasks[1], name).fingerprint()
        assert first != getattr(other, name).fingerprint()


def test_a_misplaced_answer_or_a_question_without_one_is_refused():
    with pytest.raises(ValueError, match="is not at character"):
        QASplit(["q"], ["t"], ["who?"], ["Ann met Bob."], [(Answer("Bob", 0),)])
    with pytest.raises(ValueError, match="has no answer"):
        QASplit(["q"], ["t"], ["who?"], ["Ann met Bob."], [()])


def test_split_by_title_and_subsample_keep_whole_rows():
    rows = [(f"id{i}", f"title{i % 5}", f"question {i}", f"context {i % 5}") for i in range(30)]
    split = QASplit(
        [r[0] for r in rows],
        [r[1] for r in rows],
        [r[2] for r in rows],
        [r[3] for r in rows],
        [(Answer("context", 0),)] * 30,
    )
    rest, held = split_by_title(split, 2, seed=0)
    assert len(set(held.titles)) == 2 and not set(held.titles) & set(rest.titles)
    assert len(rest) + len(held) == 30
    sample = subsample_questions(split, 7, seed=3)
    assert len(sample) == 7 and sample.ids == sorted(sample.ids)
    assert subsample_questions(split, 7, seed=3).fingerprint() == sample.fingerprint()
    assert subsample_questions(split, None, seed=3) is split


# -- windows and offsets ------------------------------------------------------------------------


def test_windows_recover_every_answer_exactly_on_real_squad_questions(squad, tokenizer):
    """48 seeded training questions in 96-token windows (most contexts span several): every
    window that holds the answer maps it back to exactly the gold text through its offsets, every
    question has such a window, and a window without the whole answer targets [CLS]."""
    sample = subsample_questions(squad.train, 48, seed=1)
    windows = make_windows(sample, tokenizer, max_length=96, stride=32, max_question_length=64)
    assert len(windows) > 2 * len(sample)  # the contexts really are cut into windows
    found = answer_texts(sample, windows)
    assert sorted(found) == list(range(len(sample)))
    for example, texts in found.items():
        assert set(texts) == {sample.answers[example][0].text}
    cls = tokenizer.cls_token_id
    for window in range(len(windows)):
        ids = windows.features["input_ids"][window]
        assert len(ids) <= 96 and ids[0] == cls
        if windows.offsets[window][windows.start_positions[window], 0] == OUTSIDE:
            assert windows.start_positions[window] == windows.end_positions[window] == 0


def test_an_answer_that_crosses_a_window_boundary_is_taken_from_the_next_window(tokenizer):
    # 13 one-token words; 16-token windows hold [CLS] where ? [SEP], 11 context tokens, [SEP]
    context = "red green blue yellow black white gray pink brown gold silver orange purple"
    split = one_question(context, "silver orange purple")  # words 10-12
    windows = make_windows(split, tokenizer, max_length=16, stride=4, max_question_length=8)
    assert len(windows) == 2
    first, second = windows.offsets
    assert context[first[first[:, 0] != OUTSIDE][-1, 0] :].startswith("silver")  # cut inside
    assert (windows.start_positions[0], windows.end_positions[0]) == (0, 0)  # [CLS]: not whole
    assert answer_texts(split, windows) == {0: ["silver orange purple"]}
    shared = set(map(tuple, first[first[:, 0] != OUTSIDE])) & set(map(tuple, second))
    assert len(shared) == 4  # the stride: tokens in both windows


def test_a_mid_token_answer_maps_to_the_smallest_enclosing_span(tokenizer):
    # About 0.4% of SQuAD answers start or end inside a word piece ("Buddh" of "Buddhism"):
    # no token span equals them, and the examples' rule takes the span that encloses them.
    split = one_question("Buddhism came to Japan.", "Buddh")
    windows = make_windows(split, tokenizer, max_length=32, stride=8, max_question_length=8)
    assert answer_texts(split, windows) == {0: ["Buddhism"]}


def test_questions_are_cut_and_a_stride_without_room_is_an_error(tokenizer):
    long_question = " ".join(["why"] * 50) + "?"
    split = one_question("red green blue cyan black white", "blue", question=long_question)
    windows = make_windows(split, tokenizer, max_length=24, stride=4, max_question_length=8)
    question_tokens = sum(1 for o in windows.offsets[0] if o[0] == OUTSIDE) - 3  # [CLS], 2x[SEP]
    assert question_tokens == 8
    with pytest.raises(ValueError, match=r"task\.doc_stride=13 leaves no room"):  # 24 - 8 - 3
        make_windows(split, tokenizer, max_length=24, stride=13, max_question_length=8)


# -- span decoding ------------------------------------------------------------------------------


def test_oracle_logits_decode_to_the_gold_answers(squad, tokenizer):
    """Logits peaked at each window's target decode, over all windows, to the gold text."""
    sample = subsample_questions(squad.test, 32, seed=2)
    windows = make_windows(sample, tokenizer, max_length=96, stride=32, max_question_length=64)
    width = max(windows.lengths)
    start = np.full((len(windows), width), -5.0, dtype=np.float32)
    end = start.copy()
    rows = np.arange(len(windows))
    start[rows, windows.start_positions] = 5.0
    end[rows, windows.end_positions] = 5.0
    answers = best_answers(sample, windows, rows, start, end, n_best=20, max_answer_length=30)
    assert answers == [a[0].text for a in sample.answers]
    assert squad_scores(answers, sample.answer_texts()) == {"exact_match": 1.0, "f1": 1.0}


def test_n_best_search_skips_invalid_spans_and_takes_the_best_valid_one():
    # Tokens 0-2 are outside the context, 3-9 inside, at characters 0, 10, ..., 60.
    offsets = np.array([[OUTSIDE, OUTSIDE]] * 3 + [[10 * i, 10 * i + 5] for i in range(7)])
    start = np.zeros(10, dtype=np.float32)
    end = np.zeros(10, dtype=np.float32)
    start[[0, 8, 4]] = [9.0, 8.0, 3.0]  # best start in the question; next ends after every end
    end[[1, 5, 6]] = [9.0, 4.0, 3.5]
    score, first, last = best_span(offsets, start, end, n_best=3, max_answer_length=30)
    assert (score, first, last) == (7.0, 10, 25)  # start token 4, end token 5
    assert best_span(offsets, start, end, n_best=3, max_answer_length=1) is None
    assert best_span(offsets, start, end, n_best=1, max_answer_length=30) is None  # top-1 only


def test_the_best_span_over_windows_wins_and_no_span_gives_an_empty_answer():
    split = QASplit(
        ["a", "b"],
        ["t", "t"],
        ["q1", "q2"],
        ["one two three", "four five"],
        [(Answer("two", 4),), (Answer("five", 5),)],
    )
    offsets = [
        np.array([[OUTSIDE, OUTSIDE], [0, 3], [4, 7]]),
        np.array([[OUTSIDE, OUTSIDE], [4, 7], [8, 13]]),
        np.array([[OUTSIDE, OUTSIDE], [OUTSIDE, OUTSIDE]]),
    ]
    windows = Windows(
        features={"input_ids": [np.zeros(len(o), dtype=np.int32) for o in offsets]},
        example_index=np.array([0, 0, 1]),
        offsets=offsets,
        start_positions=np.zeros(3, dtype=np.int64),
        end_positions=np.zeros(3, dtype=np.int64),
    )
    start = np.array([[0, 1, 2], [0, 0, 6], [5, 5, -1e9]], dtype=np.float32)
    end = np.array([[0, 1, 2], [0, 0, 6], [5, 5, -1e9]], dtype=np.float32)
    answers = best_answers(split, windows, np.array([2, 0, 1]), start[[2, 0, 1]], end[[2, 0, 1]])
    assert answers == ["three", ""]


# -- the official SQuAD v1.1 metric --------------------------------------------------------------


@pytest.mark.parametrize(
    ("prediction", "gold", "em", "f1"),
    [
        ("Denver Broncos", "Denver Broncos", 1.0, 1.0),
        ("the Denver Broncos!", "denver  broncos", 1.0, 1.0),  # case, article, punctuation
        ("Broncos", "Denver Broncos", 0.0, 2 / 3),  # P 1, R 1/2
        ("the Denver Broncos won", "Denver Broncos", 0.0, 0.8),  # P 2/3, R 1
        ("Carolina Panthers", "Denver Broncos", 0.0, 0.0),
        ("", "Denver Broncos", 0.0, 0.0),
        ("an apple a day", "apple day", 1.0, 1.0),
        ("Santa Clara, California", "Santa Clara California", 1.0, 1.0),
        ("the", "a", 1.0, 0.0),  # both empty after normalisation: v1.1's F1 is 0
        ("1,000 people", "1000 people", 1.0, 1.0),  # punctuation inside numbers goes too
    ],
)
def test_exact_match_and_f1_on_hand_checked_cases(prediction, gold, em, f1):
    assert exact_match(prediction, gold) == em
    assert token_f1(prediction, gold) == pytest.approx(f1)


def test_scores_take_the_best_gold_answer_and_average_over_questions():
    assert normalize_answer("  The  Cat-in the Hat. ") == "catin hat"
    scores = squad_scores(
        ["Denver Broncos", "Panthers", "nothing"],
        [["Broncos", "Denver Broncos"], ["the Carolina Panthers", "Carolina"], ["something"]],
    )
    assert scores["exact_match"] == pytest.approx(1 / 3)
    assert scores["f1"] == pytest.approx((1 + 2 / 3 + 0) / 3)


def test_our_scores_equal_torchmetrics_squad_on_real_answers(squad):
    from torchmetrics.functional.text import squad as torchmetrics_squad

    sample = subsample_questions(squad.test, 60, seed=4)
    contexts = sample.contexts
    predictions = []  # exact, longer, shorter and wrong spans around the first gold answer
    for i, answers in enumerate(sample.answers):
        a = answers[0]
        cuts = [(a.start, a.end), (max(0, a.start - 12), a.end), (a.start, a.end - 3), (0, 9)]
        first, last = cuts[i % 4]
        predictions.append(contexts[i][first:last])
    ours = squad_scores(predictions, sample.answer_texts())
    theirs = torchmetrics_squad(
        [{"prediction_text": p, "id": i} for p, i in zip(predictions, sample.ids, strict=True)],
        [
            {"answers": {"text": t, "answer_start": [0] * len(t)}, "id": i}
            for t, i in zip(sample.answer_texts(), sample.ids, strict=True)
        ],
    )
    assert 0.2 < ours["f1"] < 0.95
    assert ours["exact_match"] == pytest.approx(theirs["exact_match"].item() / 100, abs=1e-6)
    assert ours["f1"] == pytest.approx(theirs["f1"].item() / 100, abs=1e-5)


def test_span_logits_pad_to_width_and_keep_each_window_once():
    logits = SpanLogits(width=5)
    logits.update(torch.tensor([2, 0]), torch.ones(2, 3), torch.zeros(2, 3))
    logits.update(torch.tensor([1, 0]), torch.full((2, 4), 2.0), torch.zeros(2, 4))
    index, start, end = logits.compute()
    assert index.tolist() == [0, 1, 2] and start.shape == end.shape == (3, 5)
    assert start[0, :3].tolist() == [1.0, 1.0, 1.0] and start[0, 3] == SpanLogits.PAD
    assert start[1, :4].tolist() == [2.0] * 4


# -- runs ---------------------------------------------------------------------------------------


def test_tiny_squad_run_scores_exact_match_and_f1_and_exports_a_qa_adapter(tmp_path):
    results = run_in_process(tmp_path, "task=squad", *TINY)
    assert results["status"] == "completed", results["error"]
    assert results["metric"] == "f1" and results["metric_names"] == ["f1", "exact_match"]
    for key in ("test/exact_match", "test/f1", "val/f1", "val/exact_match", "val/f1_best"):
        assert 0.0 <= results["metrics"][key] <= 1.0, key
    assert results["task_sizes"] == {"train": 48, "validation": 32, "test": 32}
    assert results["trainable_params"] == results["trainable_adapter_params"] + 32 * 2 + 2
    config = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert config["task_type"] == "QUESTION_ANS" and config["modules_to_save"] == ["qa_outputs"]


@pytest.mark.parametrize(
    "overrides",
    [
        ["method=lora", "budget.rank=2"],
        ["method=gelora_budget", "budget.rank=2"],
        ["method=random", "budget.rank=2"],
        ["method=adalora", "budget.rank=2"],
        ["method=eva", "budget.rank=2"],
        ["method=untrained"],
    ],
    ids=lambda o: o[0].removeprefix("method="),
)
def test_every_method_runs_on_squad(tmp_path, overrides):
    results = run_in_process(tmp_path, "task=squad", *TINY, *overrides)
    assert results["status"] == "completed", results["error"]
    assert {"test/exact_match", "test/f1"} <= set(results["metrics"])
    if overrides == ["method=untrained"]:
        assert results["optimizer_steps"] == 0 and results["test_checkpoint"] == "final"
    else:
        assert results["optimizer_steps"] == 3
        assert results["budget_params"] == 2 * 896  # uniform rank 2 on tiny_bert's 12 maps


def test_a_stride_too_large_for_the_windows_is_a_config_error(tmp_path):
    from gelora.errors import ConfigError

    with pytest.raises(ConfigError, match=r"task\.doc_stride=30 leaves no room"):
        run_in_process(tmp_path, "task=squad", *TINY, "task.doc_stride=30")
    recorded = json.loads((tmp_path / "results.json").read_text())
    assert recorded["status"] == "failed"


def write_squad_file(path, n_articles: int, per_article: int = 4) -> None:
    """A small SQuAD-format file: each question asks for one colour of its paragraph."""
    colours = ["red", "green", "blue", "yellow", "black", "white"]
    data = []
    for a in range(n_articles):
        context = f"Article {a} is about " + ", ".join(colours) + " things."
        qas = [
            {
                "id": f"{a}-{q}",
                "question": f"Which colour comes {q + 1}th in article {a}?",
                "answers": [{"text": colours[q], "answer_start": context.index(colours[q])}],
            }
            for q in range(per_article)
        ]
        data.append({"title": f"article {a}", "paragraphs": [{"context": context, "qas": qas}]})
    path.write_text(json.dumps({"version": "1.1", "data": data}))


def test_from_files_reads_squad_format_and_holds_out_whole_articles(tmp_path):
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from gelora.data.squad import read_squad_json
    from tests.helpers import CONF

    write_squad_file(tmp_path / "train.json", n_articles=20)
    cfg = OmegaConf.create({"task": OmegaConf.load(CONF / "task" / "from_files.yaml")})
    cfg.task.train_file = str(tmp_path / "train.json")
    cfg.task.problem = "extractive_qa"
    task = instantiate(cfg.task.loader)
    assert task.problem == "extractive_qa" and task.sizes() == {
        "train": 64,
        "validation": 8,
        "test": 8,
    }
    titles = [set(s.titles) for s in (task.train, task.validation, task.test)]
    assert not (titles[0] & titles[1] or titles[0] & titles[2] or titles[1] & titles[2])
    assert any("whole articles" in note for note in task.notes)
    write_squad_file(tmp_path / "one.json", n_articles=1, per_article=6)
    cfg.task.train_file = str(tmp_path / "one.json")
    small = instantiate(cfg.task.loader)
    assert small.sizes() == {"train": 4, "validation": 1, "test": 1}
    assert any("questions (fewer than 10 articles)" in note for note in small.notes)
    (tmp_path / "bad.json").write_text(json.dumps({"data": [{"title": "t"}]}))
    with pytest.raises(ValueError, match=r"not a SQuAD-format JSON file \(missing 'paragraphs'\)"):
        read_squad_json(tmp_path / "bad.json")


def test_a_users_squad_files_train_end_to_end(tmp_path):
    write_squad_file(tmp_path / "train.json", n_articles=12)
    write_squad_file(tmp_path / "dev.json", n_articles=2)
    results = run_in_process(
        tmp_path / "run",
        "task=from_files",
        "task.problem=extractive_qa",
        f"task.train_file={tmp_path / 'train.json'}",
        f"task.test_file={tmp_path / 'dev.json'}",
        "task.metrics=[f1,exact_match]",
        *TINY,
    )
    assert results["status"] == "completed", results["error"]
    assert results["task_sizes"] == {"train": 40, "validation": 8, "test": 8}
    assert {"test/f1", "test/exact_match"} <= set(results["metrics"])


def test_a_qa_adapter_loads_in_peft_with_our_span_logits(token_batch, tmp_path):
    """The export's QUESTION_ANS adapter through peft gives our start and end logits."""
    import copy

    from peft import PeftModel
    from transformers import BertConfig, BertForQuestionAnswering

    from gelora.lora import inject_lora, lora_layers, mark_trainable
    from gelora.lora.export import save_adapter
    from gelora.models import find_target_modules
    from gelora.ranks import UniformPolicy
    from tests.tiny_models import BERT_TARGETS

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=100,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    ours = BertForQuestionAnswering(config).eval()
    base = copy.deepcopy(ours)
    plan = UniformPolicy(rank=2).plan(
        find_target_modules(ours, "bert.encoder.layer", BERT_TARGETS), None
    )
    inject_lora(ours, plan)
    mark_trainable(ours, ["qa_outputs"])
    with torch.no_grad():  # as after training: non-zero B, a changed head
        for layer in lora_layers(ours).values():
            layer.lora_B.weight.normal_(0, 0.1)
        ours.qa_outputs.weight.add_(0.1)
    directory = save_adapter(
        ours, plan, tmp_path / "adapter", head_modules=["qa_outputs"], task_type="QUESTION_ANS"
    )
    config = json.loads((directory / "adapter_config.json").read_text())
    assert config["task_type"] == "QUESTION_ANS"
    loaded = PeftModel.from_pretrained(base, directory).eval()
    with torch.no_grad():
        expected, actual = ours(**token_batch), loaded(**token_batch)
    for key in ("start_logits", "end_logits"):
        assert (getattr(actual, key) - getattr(expected, key)).abs().max().item() < 1e-5


@pytest.mark.parametrize(
    "name",
    [
        "minilm_l6",
        "minilm_l3",
        "tiny_bert",
        "bert_base_uncased",
        "roberta_base",
        "deberta_v3_base",
        "mpnet_base",
    ],
)
def test_every_encoder_config_takes_a_span_head(name):
    """Each encoder's model config, as composed, finds its blocks and maps in the QA model
    (``*ForQuestionAnswering``) and trains ``qa_outputs`` with the adapters."""
    from transformers import (
        AutoModelForQuestionAnswering,
        BertConfig,
        DebertaV2Config,
        MPNetConfig,
        RobertaConfig,
    )

    from gelora.lora.inject import inject_lora, lora_layers, mark_trainable
    from gelora.models import find_target_modules
    from gelora.ranks import UniformPolicy
    from tests.helpers import compose_train

    cfg = compose_train(f"model={name}", "task=squad", "paths.output_dir=.").model
    small = {"hidden_size": 32, "num_attention_heads": 4, "intermediate_size": 64}
    small |= {"vocab_size": 100, "num_hidden_layers": 2, "max_position_embeddings": 64}
    if name == "roberta_base":
        config = RobertaConfig(**small, pad_token_id=1)
    elif name == "deberta_v3_base":
        config = DebertaV2Config(**small)
    elif name == "mpnet_base":
        config = MPNetConfig(**small, pad_token_id=1)
    else:
        config = BertConfig(**small)
    torch.manual_seed(0)
    model = AutoModelForQuestionAnswering.from_config(config)
    targets = find_target_modules(model, cfg.blocks, list(cfg.target_modules))
    inject_lora(model, UniformPolicy(rank=2).plan(targets, None))
    mark_trainable(model, list(cfg.qa_head_modules))
    assert list(cfg.qa_head_modules) == ["qa_outputs"] and len(lora_layers(model)) == len(targets)
    batch = {"input_ids": torch.randint(2, 100, (2, 9))}
    batch |= {"start_positions": torch.tensor([1, 3]), "end_positions": torch.tensor([2, 5])}
    model(**batch).loss.backward()
    assert model.qa_outputs.weight.grad is not None
    assert all(layer.lora_B.weight.grad is not None for layer in lora_layers(model).values())


def test_squad_brings_its_own_learning_rates_and_an_override_still_wins():
    from tests.helpers import compose_train

    def rates(*overrides: str) -> tuple[float, float | None]:
        optimizer = compose_train(*overrides, "paths.output_dir=.").optimizer
        return optimizer.lr, optimizer.head_lr

    assert rates() == (1.0e-3, None)  # rotten_tomatoes: the framework's default
    assert rates("task=squad") == (2.0e-3, 1.0e-2)  # chosen on validation F1 (squad_cpu.md)
    assert rates("task=squad", "optimizer.lr=5e-4", "optimizer.head_lr=null") == (5.0e-4, None)
    assert rates("task=squad", "experiment=squad_deberta") == (1.0e-3, None)  # the paper's
