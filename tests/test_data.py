"""The default task's split: seeded, stratified, disjoint and the same rows on every machine."""

from __future__ import annotations

import bz2
import hashlib
from collections import Counter

import pytest

from gelora.data.rotten_tomatoes import load_rotten_tomatoes
from gelora.data.task_data import Split, stratified_subsample, stratified_three_way_split


def _fingerprint(split: Split) -> str:
    return hashlib.sha256(
        "\n".join(f"{y}\t{t}" for t, y in zip(split.texts, split.labels, strict=True)).encode()
    ).hexdigest()


@pytest.fixture(scope="module")
def task():
    return load_rotten_tomatoes(split_seed=0)


def test_rotten_tomatoes_sizes_and_labels(task):
    sizes = task.sizes()
    assert sum(sizes.values()) == 12808 - 56  # 56 repeated or contradictory snippets dropped
    assert sizes["test"] == sizes["validation"] == 1276
    assert task.label_names == ["rotten", "fresh"]


def test_split_is_disjoint_and_stratified(task):
    train, val, test = (set(s.texts) for s in (task.train, task.validation, task.test))
    assert not (train & val or train & test or val & test)
    shares = [Counter(s.labels)[1] / len(s) for s in (task.train, task.validation, task.test)]
    assert max(shares) - min(shares) < 0.01
    assert 0.57 < shares[0] < 0.59  # fresh is 7,403 of 12,808


def test_split_is_stable_across_calls_and_seed_dependent(task):
    again = load_rotten_tomatoes(split_seed=0)
    assert _fingerprint(again.test) == _fingerprint(task.test)
    assert _fingerprint(load_rotten_tomatoes(split_seed=1).test) != _fingerprint(task.test)


def test_split_does_not_depend_on_row_order():
    data = Split([f"text {i}" for i in range(100)], [i % 2 for i in range(100)])
    reversed_data = Split(data.texts[::-1], data.labels[::-1])
    a = stratified_three_way_split(data, validation_fraction=0.1, test_fraction=0.2, seed=3)
    b = stratified_three_way_split(
        reversed_data, validation_fraction=0.1, test_fraction=0.2, seed=3
    )
    assert [sorted(x.texts) for x in a] == [sorted(x.texts) for x in b]


def test_subsample_keeps_class_balance_and_handles_small_requests():
    data = Split([str(i) for i in range(1000)], [int(i < 300) for i in range(1000)])
    small = stratified_subsample(data, 100, seed=0)
    assert len(small) == 100 and Counter(small.labels)[1] == 30
    assert stratified_subsample(data, None, seed=0) is data
    assert stratified_subsample(data, 5000, seed=0) is data
    with pytest.raises(ValueError, match="max_samples must be >= 1, got 0"):
        stratified_subsample(data, 0, seed=0)


def test_a_second_load_in_one_process_is_a_copy_of_the_same_split(task, tmp_path, monkeypatch):
    from gelora.data import rotten_tomatoes

    again = load_rotten_tomatoes(split_seed=0)
    assert again == task and again.train.texts is not task.train.texts
    again.train.texts.clear()  # one caller's edit reaches no other caller
    assert len(load_rotten_tomatoes(split_seed=0).train.texts) == len(task.train.texts)
    # a rewritten corpus file is read again, not served from the cache
    corpus = tmp_path / "corpus.csv.bz2"
    corpus.write_bytes(rotten_tomatoes.corpus_path().read_bytes())
    monkeypatch.setattr(rotten_tomatoes, "corpus_path", lambda: corpus)
    assert load_rotten_tomatoes(split_seed=0) == task
    rows = "".join(f"film {i},{'fresh' if i % 2 else 'rotten'}\n" for i in range(40))
    corpus.write_bytes(bz2.compress(f"text,category\n{rows}".encode()))
    assert sum(load_rotten_tomatoes(split_seed=0).sizes().values()) == 40
