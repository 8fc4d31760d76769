"""Every task config loads: offline corpora (real data), GLUE (local copies in its schema) and a
user's own files, each with a seeded, stable split and metrics that fit it."""

from __future__ import annotations

import csv
import sys
from collections import Counter
from pathlib import Path

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from gelora.data.glue import GLUE_TASKS, GlueUnavailable, load_glue
from gelora.data.task_data import (
    Split,
    TaskData,
    strata,
    stratified_split,
    stratified_three_way_split,
)
from gelora.kinds.from_files import load_from_files
from gelora.training.metrics import check_metrics
from tests.glue_fixtures import glue_rows, write_glue_copy

TASK_CONF = Path(__file__).resolve().parents[1] / "conf" / "task"
OFFLINE = {  # task -> (train, validation, test), label count (1: regression), metrics
    "rotten_tomatoes": ((10200, 1276, 1276), 2, ["accuracy"]),
    "snli": ((89890, 10000, 9824), 3, ["accuracy"]),
    "newsgroups20": ((10135, 1127, 7528), 20, ["accuracy", "macro_f1"]),
    "reuters_r8": ((4873, 542, 2189), 8, ["accuracy", "macro_f1"]),
    "reuters_r52": ((5803, 637, 2568), 52, ["accuracy", "macro_f1"]),
    "election_tweets": ((5146, 644, 644), 2, ["accuracy"]),
    "book_excerpts": ((84, 28, 28), 2, ["accuracy"]),
    "friends_speaker": ((33822, 4195, 4323), 6, ["accuracy", "macro_f1"]),
    "bbc_news": ((1487, 213, 425), 5, ["accuracy", "macro_f1"]),
    "vader_movies": ((8481, 1061, 1061), 1, ["pearson", "spearman"]),
    "vader_nyt": ((4095, 512, 512), 1, ["pearson", "spearman"]),
    "vader_tweets": ((3359, 421, 420), 1, ["pearson", "spearman"]),
    "vader_amazon": ((2957, 370, 370), 1, ["pearson", "spearman"]),
}
GLUE_METRICS = {
    "cola": ["matthews"],
    "sst2": ["accuracy"],
    "mrpc": ["accuracy", "f1"],
    "qqp": ["accuracy", "f1"],
    "stsb": ["pearson", "spearman"],
    "mnli": ["accuracy"],
    "qnli": ["accuracy"],
    "rte": ["accuracy"],
}


def task_config(name: str, **overrides) -> OmegaConf:
    cfg = OmegaConf.create({"task": OmegaConf.load(TASK_CONF / f"{name}.yaml")})
    for key, value in overrides.items():
        OmegaConf.update(cfg, f"task.{key}", value)
    return cfg


def load(name: str, **overrides) -> TaskData:
    """The task as ``gelora-train task=<name>`` loads it, from its real config file."""
    return instantiate(task_config(name, **overrides).task.loader)


def test_every_task_config_is_covered_here():
    names = {p.stem for p in TASK_CONF.glob("*.yaml")}
    # squad (extractive QA) and alpaca_demo (instruction tuning), each with its own split type,
    # are tested in tests/test_squad.py and tests/test_instruct.py
    expected = {*OFFLINE, *(f"glue_{t}" for t in GLUE_TASKS), "from_files", "squad", "alpaca_demo"}
    assert names == expected


def test_the_catalogue_page_lists_every_task_and_the_offline_sizes_and_metrics():
    page = (TASK_CONF.parents[1] / "docs" / "catalogue.md").read_text()
    table = page.split("\n## Tasks\n")[1].split("\nNotes:\n")[0]
    rows = {}
    for line in table.splitlines():
        if line.startswith("| `") and not line.startswith("| `task=`"):
            cells = [cell.strip() for cell in line.strip("|").split("|")]
            rows[cells[0].split("`")[1]] = cells
    assert set(rows) == {p.stem for p in TASK_CONF.glob("*.yaml")}
    for name, (sizes, _, metrics) in OFFLINE.items():
        assert rows[name][3] == " / ".join(f"{n:,}" for n in sizes), name
        assert rows[name][5] == ", ".join(metrics), name


@pytest.mark.parametrize("name", sorted(OFFLINE))
def test_offline_task_loads_with_its_sizes_labels_and_metrics(name):
    sizes, num_labels, metrics = OFFLINE[name]
    cfg = task_config(name)
    task = instantiate(cfg.task.loader)
    assert task.name == cfg.task.name == name
    assert (task.sizes()["train"], task.sizes()["validation"], task.sizes()["test"]) == sizes
    assert task.num_labels == num_labels
    assert list(cfg.task.metrics) == metrics
    check_metrics(metrics, task.problem, task.num_labels)
    for key in ("max_length", "batch_size", "eval_batch_size", "split_seed"):
        assert isinstance(cfg.task[key], int)
    inputs = [set(split.inputs()) for split in (task.train, task.validation, task.test)]
    assert not (inputs[0] & inputs[2] or inputs[1] & inputs[2]), "test rows seen in training"
    if task.problem == "classification":
        assert set(task.test.labels) == set(range(num_labels))
        assert len(task.label_names) == num_labels
    else:
        assert task.label_names is None and all(-4 <= y <= 4 for y in task.train.labels)


def test_snli_is_a_pair_task_with_the_official_test_set():
    task = load("snli")
    assert task.is_pair_task and task.test.text_pairs is not None
    assert task.label_names == ["entailment", "neutral", "contradiction"]
    assert Counter(task.test.labels) == {0: 3368, 1: 3219, 2: 3237}  # SNLI 1.0 test, gold labels


def test_vader_split_spans_the_target_range_and_is_stable():
    task = load("vader_movies")
    for split in (task.validation, task.test):
        assert min(split.labels) < -3 and max(split.labels) > 3
    again = load("vader_movies")
    assert again.test.fingerprint() == task.test.fingerprint()
    assert load("vader_movies", split_seed=1).test.fingerprint() != task.test.fingerprint()


@pytest.mark.parametrize(
    ("name", "merged", "low", "high"),
    [("vader_tweets", 0, -3.75, 3.55), ("vader_amazon", 11, -3.7, 3.85)],
)
def test_vader_tweets_and_amazon_merge_repeats_and_keep_their_split(name, merged, low, high):
    task = load(name)
    assert f"merged {merged} repeated sentences (mean of their ratings)" in task.notes
    labels = [y for split in task.splits().values() for y in split.labels]
    assert (min(labels), max(labels)) == (low, high)
    assert len(set(task.train.texts + task.validation.texts + task.test.texts)) == sum(
        task.sizes().values()
    )  # every sentence once, in one split
    for split in (task.validation, task.test):  # deciles: each held-out split spans the range
        assert min(split.labels) < -2.5 and max(split.labels) > 2.5
    assert load(name).test.fingerprint() == task.test.fingerprint()
    assert load(name, split_seed=1).test.fingerprint() != task.test.fingerprint()


def test_vader_corpora_share_no_sentence_but_movies_are_rotten_tomatoes_snippets():
    from gelora.data.rotten_tomatoes import read_snippets
    from gelora.data.vader import CORPORA, read_ground_truth

    texts = {corpus: set(read_ground_truth(corpus)[0].texts) for corpus in CORPORA}
    for corpus, mine in texts.items():
        assert all(not mine & texts[other] for other in CORPORA if other != corpus), corpus
    snippets = set(read_snippets()[0].texts)
    assert len(texts["movieReviewSnippets"] & snippets) > 5000  # the documented overlap
    others = texts["tweets"] | texts["amazonReviewSnippets"] | texts["nytEditorialSnippets"]
    assert not others & snippets


# R52's topics with fewer than 10 train rows (after the rows that repeat a test text, and the
# repeated or contradictory ones, are dropped), with those counts: never held out for validation.
R52_RARE = {
    "carcass": 6, "cpu": 3, "dlr": 3, "fuel": 4, "heat": 6, "income": 7, "instal-debt": 5,
    "jet": 2, "lead": 4, "lumber": 7, "meal-feed": 6, "nickel": 3, "platinum": 1, "potato": 2,
    "strategic-metal": 9, "tea": 2, "zinc": 8,
}  # fmt: skip


def test_reuters_r52_keeps_rare_topics_in_train_and_says_so():
    task = load("reuters_r52")
    names = task.label_names
    train, validation = Counter(task.train.labels), Counter(task.validation.labels)
    kept = train + validation
    assert {names[y]: n for y, n in kept.items() if n < 10} == R52_RARE
    assert all(train[names.index(topic)] == n for topic, n in R52_RARE.items())
    assert not {names[y] for y in validation} & set(R52_RARE)  # none held out
    assert {names[y] for y in validation} == set(names) - set(R52_RARE)  # every other topic is
    assert set(train) == set(range(52)) == set(task.test.labels)
    for y, n in validation.items():  # a stratified 10% of each held-out topic
        assert abs(n - kept[y] / 10) <= 1, names[y]
    texts = task.train.texts + task.validation.texts
    assert len(set(texts)) == len(texts) == 6440  # every kept train row once, none lost
    assert not set(texts) & set(task.test.texts)
    assert task.notes[1:] == [
        "dropped 8 train rows whose text is in the test file and 84 repeated or contradictory "
        "train rows",
        "17 categories with fewer than 10 train rows kept in train only, none held out for "
        "validation (78 rows): " + ", ".join(f"{k} {v}" for k, v in R52_RARE.items()),
    ]
    again, other = load("reuters_r52"), load("reuters_r52", split_seed=1)
    assert again.validation.fingerprint() == task.validation.fingerprint()
    assert other.validation.fingerprint() != task.validation.fingerprint()
    assert other.test.fingerprint() == task.test.fingerprint()  # the official test file, whole


def test_macro_f1_leaves_out_a_topic_neither_in_the_targets_nor_predicted():
    """What the catalogue says of R52's validation macro-F1 (35 of 52 topics held out)."""
    import torch

    from gelora.training.metrics import METRICS

    macro_f1 = METRICS["macro_f1"].build(52)
    assert macro_f1(torch.tensor([0, 1, 1]), torch.tensor([0, 1, 1])).item() == 1.0
    # A predicted topic that is not in the targets counts, as 0: (1 + 2/3 + 0) / 3.
    wrong = METRICS["macro_f1"].build(52)(torch.tensor([0, 1, 3]), torch.tensor([0, 1, 1]))
    assert wrong.item() == pytest.approx(5 / 9)


def test_rare_class_rule_leaves_r8_and_20ng_splits_as_they_were():
    # validation and test of R8 as the committed records of experiments/results/table_cpu2 scored
    # them (eval_rows), and 20NG's as before the .tab reader read quotes and the rare-class rule
    pinned = {
        "reuters_r8": (
            "d4050d82980915c9a9d4fe90bdd5afff77c6ec68155a2ab9a7354287daf9a629",
            "383ec3444979bb5da55eacfdc49e39f5b32e7322dbc7d90292226509eacf3562",
        ),
        "newsgroups20": (
            "6913fb48c4330a4029689eea3963c2436503a6d67260b1a6b540233634c4c120",
            "0c575dff748ec009ad9be5f02ca5d1a048981f60e0f4d32621b97ea2f9dd1809",
        ),
    }
    for name, (validation, test) in pinned.items():
        task = load(name)
        assert (task.validation.fingerprint(), task.test.fingerprint()) == (validation, test)
        assert len(task.notes) == 2  # no topic is rare: no note about one


def test_rare_classes_stay_in_train_and_the_rest_is_stratified():
    from gelora.data.orange_corpora import _hold_out

    labels = [0] * 50 + [1] * 30 + [2] * 3 + [3]  # 2 and 3: too few rows to hold out
    data = Split([f"t{i:02d}" for i in range(len(labels))], labels)
    train, validation, rare = _hold_out(data, 0.1, 10, seed=0)
    assert rare == [2, 3]
    assert Counter(validation.labels) == {0: 5, 1: 3}
    assert Counter(train.labels) == {0: 45, 1: 27, 2: 3, 3: 1}
    assert sorted(train.texts + validation.texts) == data.texts
    # With no rare class the draw is the plain stratified split, row for row.
    common = data.subset(range(80))
    assert _hold_out(common, 0.1, 10, seed=0)[:2] == stratified_split(common, 0.1, seed=0)


@pytest.mark.parametrize(
    ("name", "labels", "counts", "repeats"),
    [
        ("election_tweets", ["HillaryClinton", "realDonaldTrump"], (3226, 3218), 10),
        ("book_excerpts", ["adult", "children"], (70, 70), 0),
    ],
)
def test_orange_tables_are_deduplicated_and_split_by_label(name, labels, counts, repeats):
    task = load(name)
    assert task.label_names == labels
    rows = [y for split in (task.train, task.validation, task.test) for y in split.labels]
    texts = task.train.texts + task.validation.texts + task.test.texts
    assert len(set(texts)) == len(texts)  # no text in two splits, none twice in one
    assert sum(counts) - repeats == len(rows)
    dropped = f"dropped {repeats} repeated rows (each text kept once) and the 0 rows of 0 texts"
    assert f"{dropped} found under two labels" in task.notes
    for split in (task.validation, task.test):  # stratified: the classes as balanced as overall
        share = Counter(split.labels)[0] / len(split)
        assert abs(share - counts[0] / sum(counts)) < 0.01
    assert load(name).test.fingerprint() == task.test.fingerprint()
    assert load(name, split_seed=1).test.fingerprint() != task.test.fingerprint()


def test_election_tweets_input_is_the_tweet_alone():
    """The Content column, read as Orange reads it (csv quoting, ``""`` a quote), and nothing
    else: not the author, not the retweet flag, original author or source URL columns."""
    from gelora.assets import asset_path

    task = load("election_tweets")
    texts = task.train.texts + task.validation.texts + task.test.texts
    with open(asset_path("orange-text-corpora") / "election-tweets-2016.tab", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))[2:]  # past the types and flags rows
    assert len(rows) == 6444
    assert sorted(texts) == sorted({" ".join(row["Content"].split()) for row in rows})
    metadata = {row[key] for row in rows for key in ("Source URL", "Original author", "Time")}
    assert not metadata & set(texts)
    # The file doubles each quote inside a quoted field (1,501 lines hold ""): read as one. A
    # few tweets keep "" where a quotation ends at the end of a quoted tweet.
    assert sum('"' in t for t in texts) > 1000 and sum('""' in t for t in texts) < 10


FRIENDS_LINES = {"Chandler": 7133, "Joey": 6902, "Monica": 6963, "Phoebe": 6329, "Rachel": 7540,
                 "Ross": 7473}  # fmt: skip


def test_friends_speaker_keeps_the_six_friends_once_each_and_splits_by_episode():
    from gelora.assets import asset_path
    from gelora.data.orange_corpora import FRIENDS, friends_line, read_friends

    path = asset_path("orange-text-corpora") / "friends-transcripts.tab"
    task = load("friends_speaker")
    assert task.label_names == list(FRIENDS) == sorted(FRIENDS_LINES)
    splits = (task.train, task.validation, task.test)
    counts = Counter(y for split in splits for y in split.labels)
    assert {task.label_names[y]: n for y, n in counts.items()} == FRIENDS_LINES
    texts = [t for split in splits for t in split.texts]
    assert len(set(texts)) == len(texts) == 42340  # no text in two splits, none twice in one
    assert task.notes == [
        "friends-transcripts.tab: 61563 lines, read one row per line (quotes as written); input "
        "the Quote column only (cp1252 punctuation decoded, quotes straightened, stage directions "
        "in brackets removed from 16 lines), label Author",
        "kept the lines of Chandler, Joey, Monica, Phoebe, Rachel, Ross (Author exactly so); "
        "dropped the 10478 lines of 846 other speakers (Mike 360, All 340, Richard 254, Janice "
        "215, Mr. Geller 210, ...; 314 of them by several speakers at once, such as 'Ross, "
        "Rachel') and 26 empty lines",
        "dropped 803 repeated lines (each text kept once, in the first episode it is spoken in) "
        "and the 7916 lines of 852 texts spoken by two or more of the six",
        "seeded split by episode (Season & Episode), not stratified: 181 / 23 / 23 episodes in "
        "train / validation / test",
    ]
    # An independent read of the file (one row per line): each kept text is a friend's line,
    # under the one friend who speaks it; a text two friends speak is in no split.
    with open(path, encoding="utf-8", newline="") as handle:
        rows = [row for row in csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE) if row]
    rows = rows[3:]  # past the names, types and flags rows
    assert len(rows) == 61563 and {len(row) for row in rows} == {6}
    speakers: dict[str, set[str]] = {}
    for row in rows:
        if row[4] in FRIENDS and friends_line(row[5]):
            speakers.setdefault(friends_line(row[5]), set()).add(row[4])
    assert sum(len(found) > 1 for found in speakers.values()) == 852
    by_text = {
        text: task.label_names[y]
        for split in splits
        for text, y in zip(split.texts, split.labels, strict=True)
    }
    assert by_text == {t: next(iter(s)) for t, s in speakers.items() if len(s) == 1}
    # Whole episodes: each episode's lines are all in one split, 181 / 23 / 23 of the 227.
    data, episodes, _, _ = read_friends(path)
    episode_of = dict(zip(data.texts, episodes, strict=True))
    held = [{episode_of[t] for t in split.texts} for split in splits]
    assert [len(h) for h in held] == [181, 23, 23]
    assert not (held[0] & held[1] or held[0] & held[2] or held[1] & held[2])
    assert held[0] | held[1] | held[2] == {row[2] for row in rows}
    for split in splits[1:]:  # not stratified, but each friend 13-19% of a held-out split
        assert all(0.13 < n / len(split) < 0.2 for n in Counter(split.labels).values())
    again, other = load("friends_speaker"), load("friends_speaker", split_seed=1)
    assert again.test.fingerprint() == task.test.fingerprint()
    assert again.train.fingerprint() == task.train.fingerprint()
    assert other.test.fingerprint() != task.test.fingerprint()
    assert {episode_of[t] for t in other.test.texts} != held[2]


def test_friends_transcripts_are_read_one_row_per_line_not_with_csv_quoting():
    """The file quotes no field; read with csv quoting (as Orange's reader does), a line that
    begins with a quotation mark runs on over the rows after it, other speakers' lines included."""
    from gelora.assets import asset_path
    from gelora.data.orange_corpora import read_tab_columns

    path = asset_path("orange-text-corpora") / "friends-transcripts.tab"
    columns = ("Author", "Quote")
    quoted, plain = read_tab_columns(path, columns), read_tab_columns(path, columns, quoted=False)
    assert (len(quoted), len(plain)) == (61468, 61563)  # 95 rows swallowed
    assert max(len(q.split()) for _, q in quoted) > 1000  # dozens of rows run into one
    assert max(len(q.split()) for _, q in plain) < 250


def test_friends_line_decodes_cp1252_and_drops_stage_directions():
    from gelora.data.orange_corpora import friends_line

    assert friends_line("  I don\x92t  know\x97 wait. ") == "I don't know\u2014 wait."
    assert friends_line("Well\x85 no.\xa0Fine.") == "Well\u2026 no. Fine."  # 0x85 is no space
    straightened = friends_line("\u201cSo\u201d isn\u2019t \x93it\x94 \x91so\x92")
    assert straightened == '"So" isn\'t "it" \'so\''
    assert friends_line("Fine. (He sits down.) Really.") == "Fine. Really."
    assert friends_line("Here. [hands him a box.") == "Here."  # unclosed, to the end
    assert friends_line("Go! (waves and leaves.]") == "Go!"  # closed by the other bracket
    assert friends_line("(Sighs)") == ""


def test_grouped_split_keeps_each_group_whole_and_is_seeded():
    from gelora.data.task_data import grouped_three_way_split

    groups = [f"g{i % 20:02d}" for i in range(200)]
    data = Split([f"t{i:03d}" for i in range(200)], [i % 3 for i in range(200)])
    train, validation, test, named = grouped_three_way_split(
        data, groups, validation_fraction=0.1, test_fraction=0.15, seed=0
    )
    assert [len(n) for n in named] == [15, 2, 3]  # round(0.15 * 20) groups for test
    assert (len(train), len(validation), len(test)) == (150, 20, 30)
    group_of = dict(zip(data.texts, groups, strict=True))
    for split, names in zip((train, validation, test), named, strict=True):
        assert {group_of[t] for t in split.texts} == set(names)
        assert split.texts == sorted(split.texts)  # rows keep their order
    assert sorted(train.texts + validation.texts + test.texts) == data.texts
    again = grouped_three_way_split(
        data, groups, validation_fraction=0.1, test_fraction=0.15, seed=0
    )
    assert again[2] == test
    other = grouped_three_way_split(
        data, groups, validation_fraction=0.1, test_fraction=0.15, seed=1
    )
    assert other[3][2] != named[2]
    with pytest.raises(ValueError, match="3 groups are too few to split by group"):
        grouped_three_way_split(
            data, [f"g{i % 3}" for i in range(200)], validation_fraction=0.1, test_fraction=0.1,
            seed=0,
        )  # fmt: skip
    with pytest.raises(ValueError, match="200 rows but 3 groups"):
        grouped_three_way_split(
            data, groups[:3], validation_fraction=0.1, test_fraction=0.1, seed=0
        )


def test_orange_tab_reader_names_missing_columns_and_reads_quotes(tmp_path):
    from gelora.data.orange_corpora import read_tab

    path = tmp_path / "t.tab"
    path.write_text(
        "Author\tContent\nd\tstring\nclass\tmeta\n"
        'a\t"one\ttab, ""quoted"""\n\nb\t  two   words \nc\t\n'
    )
    assert read_tab(path, "Content", "Author") == (['one tab, "quoted"', "two words"], ["a", "b"])
    with pytest.raises(ValueError, match=r"expected Category and Text columns, got \['Author'"):
        read_tab(path)


def test_regression_split_is_stratified_on_deciles():
    data = Split([f"t{i}" for i in range(1000)], [float(i) for i in range(1000)])
    train, val, test = stratified_three_way_split(
        data, validation_fraction=0.1, test_fraction=0.1, seed=0
    )
    assert (len(train), len(val), len(test)) == (800, 100, 100)
    assert Counter(int(y // 100) for y in test.labels) == dict.fromkeys(range(10), 10)


def test_tiny_splits_fall_back_to_a_plain_seeded_draw():
    data = Split([f"t{i}" for i in range(12)], [i % 4 for i in range(12)])
    assert strata(data.labels, 2) is None  # 2 rows cannot hold 4 classes: no stratification
    rest, held = stratified_split(data, 2, seed=0)
    assert (len(rest), len(held)) == (10, 2)
    assert sorted(rest.texts + held.texts) == sorted(data.texts)  # a partition of the rows
    assert stratified_split(data, 2, seed=0)[1] == held  # the seed fixes the draw
    draws = {tuple(stratified_split(data, 2, seed=seed)[1].texts) for seed in range(5)}
    assert len(draws) > 1  # and another seed draws other rows


# --- GLUE -------------------------------------------------------------------------------------


@pytest.mark.parametrize("task", sorted(GLUE_TASKS))
def test_glue_config_loads_a_local_copy_with_the_right_metrics(task, tmp_path):
    folder = write_glue_copy(task, tmp_path / task)
    cfg = task_config(f"glue_{task}", data_dir=str(folder))
    assert list(cfg.task.metrics) == GLUE_METRICS[task]
    data = instantiate(cfg.task.loader)
    assert data.name == cfg.task.name == f"glue_{task}"
    spec = GLUE_TASKS[task]
    assert data.is_pair_task == (len(spec.text_fields) == 2)
    assert data.problem == ("regression" if task == "stsb" else "classification")
    check_metrics(GLUE_METRICS[task], data.problem, data.num_labels)
    # GLUE's dev set is the test split; validation is carved from train.
    assert len(data.test) == 30 and len(data.train) + len(data.validation) == 90
    assert data.test.texts[0] == glue_rows(task, 30, seed=1)[0][spec.text_fields[0]]
    if task == "mnli":
        assert set(data.extra_tests) == {"mismatched"} and len(data.extra_tests["mismatched"]) == 30
        assert data.label_names == ["entailment", "neutral", "contradiction"]
    else:
        assert not data.extra_tests


def test_glue_drops_hidden_test_labels_and_rejects_out_of_range_ones(tmp_path):
    folder = write_glue_copy("rte", tmp_path)
    with open(folder / "train.jsonl", "a") as handle:
        handle.write('{"sentence1": "x", "sentence2": "y", "label": -1, "idx": 999}\n')
    data = load_glue(task="rte", data_dir=str(folder))
    assert len(data.train) + len(data.validation) == 90
    assert any("dropped 1 rows" in note for note in data.notes)
    with open(folder / "train.jsonl", "a") as handle:
        handle.write('{"sentence1": "x", "sentence2": "y", "label": 7, "idx": 1000}\n')
    with pytest.raises(ValueError, match=r"labels \[7\] outside 0..1"):
        load_glue(task="rte", data_dir=str(folder))


def test_glue_without_hub_or_local_copy_names_both_options(monkeypatch, tmp_path):
    datasets = pytest.importorskip("datasets")

    def offline(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(GlueUnavailable, match=r"hub through `datasets`.*task\.data_dir=") as error:
        load_glue(task="cola")
    assert "no network" in str(error.value)
    monkeypatch.setitem(sys.modules, "datasets", None)  # as if not installed
    with pytest.raises(GlueUnavailable, match="`datasets` is not installed"):
        load_glue(task="cola")
    with pytest.raises(GlueUnavailable, match="has no validation file"):
        (tmp_path / "train.csv").write_text("sentence,label\nfine,1\n")
        load_glue(task="cola", data_dir=str(tmp_path))


def test_glue_hub_path_reads_a_datasets_dict(monkeypatch):
    datasets = pytest.importorskip("datasets")
    spec = GLUE_TASKS["mnli"]
    splits = ["train", spec.test_split, *spec.extra_test_splits.values()]
    fake = datasets.DatasetDict(
        {
            split: datasets.Dataset.from_list(glue_rows("mnli", 60 if split == "train" else 21, i))
            for i, split in enumerate(splits)
        }
    )
    calls = []
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: calls.append(a) or fake)
    data = load_glue(task="mnli", validation_size=0.2)
    assert calls == [("nyu-mll/glue", "mnli")]
    assert data.sizes() == {"train": 48, "validation": 12, "test": 21, "test_mismatched": 21}


# --- your own files ---------------------------------------------------------------------------


def write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def review_rows(n: int, offset: int = 0) -> list[list]:
    return [[f"review {i} was {'great' if i % 2 else 'awful'}", "pos" if i % 2 else "neg"]
            for i in range(offset, offset + n)]  # fmt: skip


def test_from_files_maps_labels_and_carves_missing_splits(tmp_path):
    train = write_csv(tmp_path / "train.csv", ["review", "sentiment"], review_rows(100))
    cfg = task_config(
        "from_files", train_file=str(train), text_fields=["review"], label_field="sentiment"
    )
    task = instantiate(cfg.task.loader)
    assert task.label_names == ["neg", "pos"] and task.problem == "classification"
    assert task.sizes() == {"train": 80, "validation": 10, "test": 10}
    assert any("no validation_file or test_file" in note for note in task.notes)
    test = write_csv(tmp_path / "test.csv", ["review", "sentiment"], review_rows(20, 500))
    cfg.task.test_file = str(test)
    task = instantiate(cfg.task.loader)
    assert task.sizes() == {"train": 90, "validation": 10, "test": 20}
    assert any("no validation_file: validation is a seeded 10%" in n for n in task.notes)


def test_from_files_reads_pairs_and_regression_from_json_lines(tmp_path):
    path = tmp_path / "sts.jsonl"
    path.write_text(
        "".join(f'{{"a": "left {i}", "b": "right {i}", "score": {i / 10}}}\n' for i in range(50))
    )
    task = load_from_files(
        train_file=str(path), text_fields=["a", "b"], label_field="score", problem="regression"
    )
    assert task.is_pair_task and task.problem == "regression" and task.num_labels == 1
    assert all(isinstance(y, float) for y in task.train.labels)
    with pytest.raises(ValueError, match="is a regression metric, task is classification"):
        check_metrics(["pearson"], "classification", 2)


def test_from_files_numeric_labels_sort_numerically(tmp_path):
    rows = [[f"text {i}", str(i % 11)] for i in range(110)]
    task = load_from_files(train_file=str(write_csv(tmp_path / "t.csv", ["text", "label"], rows)))
    assert task.label_names == [str(i) for i in range(11)]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"label_field": "stars"},
            r"train\.csv has no column 'stars'; its columns are: text, label",
        ),
        ({"text_fields": ["text", "other"]}, "has no column 'other'"),
        ({"train_file": "nowhere.csv"}, "no such file: nowhere.csv"),
        (
            {"test_file": "UNKNOWN"},
            r"test\.csv, row 1: unknown label 'maybe'; known labels: neg, pos",
        ),
        ({"problem": "regression"}, r"row 1: label 'neg' is not a number"),
        ({"text_fields": ["a", "b", "c"]}, "one or two columns"),
        ({"train_file": "data.xlsx"}, r"unsupported file type '\.xlsx'"),
    ],
)
def test_from_files_errors_name_the_file_and_column(tmp_path, change, message):
    train = write_csv(
        tmp_path / "train.csv",
        ["text", "label"],
        [[f"t{i}", "neg"] for i in range(5)] + [["x", "pos"]] * 5,
    )
    write_csv(tmp_path / "test.csv", ["text", "label"], [["t", "maybe"]])
    (tmp_path / "data.xlsx").write_bytes(b"PK")
    kwargs = {"train_file": str(train)} | change
    for key in ("train_file", "test_file"):  # names of files written above
        if kwargs.get(key) in ("data.xlsx", "UNKNOWN"):
            kwargs[key] = str(
                tmp_path / ("data.xlsx" if kwargs[key] == "data.xlsx" else "test.csv")
            )
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        load_from_files(**kwargs)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("task.metrics=[nope]", "task.metrics: 'nope' is unknown"),
        ("task.metrics=[]", "task.metrics must be a non-empty list"),
    ],
)
def test_unknown_or_missing_metrics_are_config_errors(override, message):
    from gelora.config.checks import check_config
    from gelora.errors import ConfigError
    from tests.helpers import compose_train

    cfg = compose_train(override, "paths.output_dir=unused")
    with pytest.raises(ConfigError, match=message):
        check_config(cfg)


def test_a_metric_that_does_not_fit_the_task_is_a_config_error():
    from gelora.errors import ConfigError
    from gelora.stages.task import load_task

    cfg = task_config("bbc_news")
    cfg.task.metrics = ["f1"]  # binary F1 on five topics
    with pytest.raises(ConfigError, match="'f1' needs 2 classes, task has 5"):
        load_task(cfg.task)


def test_capped_splits_draw_their_rows_with_split_seed_not_the_training_seed():
    from gelora.stages.task import load_task
    from tests.helpers import compose_train

    caps = ["task.max_train_samples=300", "task.max_eval_samples=100", "paths.output_dir=unused"]
    tasks = [load_task(compose_train(*caps, f"seed={seed}").task) for seed in (0, 7)]
    other = load_task(compose_train(*caps, "task.split_seed=1").task)
    for name in ("train", "validation", "test"):
        assert getattr(tasks[0], name).fingerprint() == getattr(tasks[1], name).fingerprint()
        assert getattr(tasks[0], name).fingerprint() != getattr(other, name).fingerprint()
