"""VADER ground truth: sentences with the mean of human sentiment ratings, a regression target.

Source: the sdist of PyPI ``vaderSentiment`` 3.3.2, whose inner archive
``hutto_ICWSM_2014.tar.gz`` holds ``*_GroundTruth.txt`` files (``id<TAB>mean<TAB>text``) with the
mean of 20 raters' scores in [-4, 4] (Hutto & Gilbert, 2014). ``movieReviewSnippets`` are 10,605
sentences from the Rotten Tomatoes snippets behind SST: never train on one of the two sets and
test on the other. ``tweets`` are 4,200 tweets (user names and links anonymised),
``amazonReviewSnippets`` 3,708 product-review sentences, ``nytEditorialSnippets`` 5,190
editorial sentences. Scored like STS-B, by Pearson and Spearman correlation. There is no official
split: a seeded split stratified on deciles of the target.
"""

from __future__ import annotations

import io
import tarfile

from gelora.assets import asset_path
from gelora.data.task_data import Split, TaskData, stratified_three_way_split

CORPORA = {  # the ground-truth files, by their prefix
    "movieReviewSnippets": "movie-review sentences",
    "tweets": "tweets",
    "amazonReviewSnippets": "Amazon review sentences",
    "nytEditorialSnippets": "New York Times editorial sentences",
}


def read_ground_truth(corpus: str) -> tuple[Split, int]:
    """Unique sentences with their mean rating, and how many duplicate rows were dropped."""
    if corpus not in CORPORA:
        raise ValueError(f"unknown VADER corpus {corpus!r}; known: {', '.join(CORPORA)}")
    archive = asset_path("vader-ground-truth") / "hutto_ICWSM_2014.tar.gz"
    with tarfile.open(archive) as outer:
        member = outer.extractfile(f"hutto_ICWSM_2014/{corpus}_GroundTruth.txt")
        assert member is not None
        raw = member.read()
    try:
        content = raw.decode("utf-8")
    except UnicodeDecodeError:
        content = raw.decode("latin-1")
    ratings: dict[str, list[float]] = {}
    n_rows = 0
    for line in io.StringIO(content):
        fields = line.rstrip("\r\n").split("\t")
        if len(fields) < 3:
            continue
        text = " ".join("\t".join(fields[2:]).split())
        if text:
            n_rows += 1
            ratings.setdefault(text, []).append(float(fields[1]))
    texts = sorted(ratings)
    data = Split(texts, [sum(ratings[t]) / len(ratings[t]) for t in texts])
    return data, n_rows - len(data)


def load_vader(
    *,
    corpus: str = "movieReviewSnippets",
    name: str = "vader_movies",
    split_seed: int = 0,
    validation_fraction: float = 0.1,
    test_fraction: float = 0.1,
) -> TaskData:
    data, n_merged = read_ground_truth(corpus)
    train, validation, test = stratified_three_way_split(
        data, validation_fraction=validation_fraction, test_fraction=test_fraction, seed=split_seed
    )
    return TaskData(
        name=name,
        train=train,
        validation=validation,
        test=test,
        label_names=None,
        problem="regression",
        notes=[
            f"{CORPORA[corpus]}, mean human rating in [-4, 4]",
            f"merged {n_merged} repeated sentences (mean of their ratings)",
            "seeded split stratified on target deciles",
        ],
    )
