"""A user's data files (``task=from_files``) are read right or refused in one line that names the
file (and the row or line): duplicate columns, labels that mean the same number, labels that are
JSON lists, bytes that are not UTF-8, a binary file under a text name, over-long fields, ragged
rows, instruction data. And every classification run prints and records its classes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gelora.data import tables
from gelora.data.from_files import label_key
from gelora.data.instruction_data import InstructionSplit
from gelora.kinds.from_files import load_from_files
from tests.helpers import TINY, gelora_train, run_in_process


def _sentences(n: int) -> list[str]:
    words = "a warm film dull plot bright cast slow end".split()  # noqa: SIM905
    return [" ".join(words[(i + j) % 9] for j in range(4 + i % 3)) + f" {i}" for i in range(n)]


def _write(path: Path, text: str | bytes) -> str:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return str(path)


def _csv(path: Path, labels: list[str], header: str = "text,label", sep: str = ",") -> str:
    lines = [header.replace(",", sep)]
    lines += [
        f"{text}{sep}{label}" for text, label in zip(_sentences(len(labels)), labels, strict=True)
    ]
    return _write(path, "\n".join(lines) + "\n")


def _lines(n: int) -> list[str]:
    return ["text,label"] + [f"{t},{['neg', 'pos'][i % 2]}" for i, t in enumerate(_sentences(n))]


def _jsonl(path: Path, labels: list) -> str:
    rows = [{"text": t, "label": y} for t, y in zip(_sentences(len(labels)), labels, strict=True)]
    return _write(path, "".join(json.dumps(row) + "\n" for row in rows))


# -- 1. duplicate column names ------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".csv", ".tsv"])
def test_a_header_with_a_duplicate_column_is_refused(tmp_path, suffix):
    sep = "\t" if suffix == ".tsv" else ","
    lines = ["text,text,label".replace(",", sep)]
    lines += [sep.join([t, "other", ["neg", "pos"][i % 2]]) for i, t in enumerate(_sentences(20))]
    path = _write(tmp_path / f"train{suffix}", "\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=rf"train\{suffix}: column 'text' appears twice"):
        load_from_files(train_file=path)


def test_a_json_row_with_a_repeated_key_is_refused(tmp_path):
    path = _jsonl(tmp_path / "train.jsonl", ["neg", "pos"] * 10)
    text = Path(path).read_text().splitlines()
    text[4] = '{"text": "first", "text": "second", "label": "pos"}'
    _write(Path(path), "\n".join(text) + "\n")
    with pytest.raises(ValueError, match=r"train\.jsonl, line 5: key 'text' appears twice"):
        load_from_files(train_file=path)


# -- 2. one label rule --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "key"),
    [
        (1, "1"),
        (1.0, "1"),
        ("1", "1"),
        ("1.0", "1"),
        (" 1 ", "1"),
        ("01", "1"),
        ("1e0", "1"),
        (-0.0, "0"),
        (0.5, "0.5"),
        ("0.50", "0.5"),
        (" pos ", "pos"),
        ("Pos", "Pos"),
        ("1 star", "1 star"),
        ("nan", "nan"),  # text: only decimal numerals are numbers
        (True, "true"),
        (False, "false"),
    ],
)
def test_one_label_rule(value, key):
    assert label_key(value, "f.csv", 1) == key


def test_labels_that_denote_the_same_number_are_one_class(tmp_path):
    train = _csv(tmp_path / "train.csv", ["1", "1.0", " 1 ", "0", "0.0"] * 8)
    test = _jsonl(tmp_path / "test.jsonl", [1, 1.0, "1", 0, 0.0] * 2)
    task = load_from_files(train_file=train, test_file=test)
    assert task.label_names == ["0", "1"]
    assert sorted(set(task.test.labels)) == [0, 1]
    names = load_from_files(train_file=train, test_file=test, label_names=[1, "0.0"]).label_names
    assert names == ["1", "0"]


def test_label_names_that_collide_under_the_rule_are_refused(tmp_path):
    train = _csv(tmp_path / "train.csv", ["1", "0"] * 10)
    with pytest.raises(ValueError, match=r"task\.label_names lists '1' twice"):
        load_from_files(train_file=train, label_names=["0", "1", "1.0"])


# -- 3. labels that are JSON lists or objects, and booleans -------------------------------------


@pytest.mark.parametrize("bad", [["neg"], {"name": "neg"}])
def test_a_json_label_that_is_a_list_or_object_is_refused(tmp_path, bad):
    labels: list = ["neg", "pos"] * 10
    labels[2] = bad
    path = _jsonl(tmp_path / "train.jsonl", labels)
    kind = "list" if isinstance(bad, list) else "object"
    with pytest.raises(ValueError, match=rf"train\.jsonl, row 3: label .* is a JSON {kind}"):
        load_from_files(train_file=path)


def test_boolean_labels_are_the_classes_false_and_true(tmp_path):
    path = _jsonl(tmp_path / "train.jsonl", [True, False] * 10)
    test = _csv(tmp_path / "test.csv", ["true", "false"])
    task = load_from_files(train_file=path, test_file=test)
    assert task.label_names == ["false", "true"]
    assert task.test.labels == [1, 0]


def test_a_text_that_is_a_json_list_is_refused(tmp_path):
    path = _jsonl(tmp_path / "train.jsonl", ["neg", "pos"] * 10)
    rows = [json.loads(line) for line in Path(path).read_text().splitlines()]
    rows[6]["text"] = ["two", "sentences"]
    _write(Path(path), "".join(json.dumps(row) + "\n" for row in rows))
    with pytest.raises(ValueError, match=r"train\.jsonl, row 7: .*'text' is a JSON list"):
        load_from_files(train_file=path)


# -- 5., 6. bytes that are not UTF-8 text -------------------------------------------------------


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".json"])
def test_bytes_that_are_not_utf8_name_the_file_and_line(tmp_path, suffix):
    if suffix in (".csv", ".tsv"):
        sep = "\t" if suffix == ".tsv" else ","
        body = f"text{sep}label\nfine{sep}pos\n".encode() + f"caf\xe9{sep}neg\n".encode("latin-1")
    else:
        body = b'{"text": "fine", "label": "pos"}\n{"text": "caf\xe9", "label": "neg"}\n'
    path = _write(tmp_path / f"train{suffix}", body)
    line = 3 if suffix in (".csv", ".tsv") else 2
    with pytest.raises(ValueError, match=rf"train\{suffix}, line {line}: not UTF-8"):
        tables.read_table(path)


def test_a_parquet_file_with_a_csv_name_is_named_for_what_it_is(tmp_path):
    import pandas as pd

    path = tmp_path / "train.csv"
    pd.DataFrame({"text": _sentences(20), "label": ["neg", "pos"] * 10}).to_parquet(path)
    with pytest.raises(ValueError, match=r"train\.csv: this is a Parquet file \(it starts with"):
        load_from_files(train_file=str(path))


def test_a_binary_file_with_a_text_name_is_refused(tmp_path):
    path = _write(tmp_path / "train.jsonl", b"PK\x03\x04" + bytes(range(256)))
    with pytest.raises(ValueError, match=r"train\.jsonl: this is a ZIP archive"):
        load_from_files(train_file=path)
    path = _write(tmp_path / "train.tsv", b"text\tlabel\nok\x00\x01\x02\tpos\n")
    with pytest.raises(ValueError, match=r"train\.tsv: binary, not text \(a NUL byte on line 2\)"):
        load_from_files(train_file=path)


def test_a_file_named_parquet_that_is_not_is_refused(tmp_path):
    path = _csv(tmp_path / "train.parquet", ["neg", "pos"] * 10)
    with pytest.raises(ValueError, match=r"train\.parquet: not a Parquet file"):
        load_from_files(train_file=path)


# -- 7. long fields and ragged rows -------------------------------------------------------------


def test_a_long_text_is_read(tmp_path):
    long_text = "word " * 60_000  # 300,000 characters: over Python's default csv field limit
    lines = _lines(20)
    lines[5] = f"{long_text},pos"
    path = _write(tmp_path / "train.csv", "\n".join(lines) + "\n")
    rows = tables.read_table(path)
    assert rows[4]["text"] == long_text


def test_an_over_long_field_names_the_file_and_row(tmp_path, monkeypatch):
    monkeypatch.setattr(tables, "FIELD_LIMIT", 1000)
    lines = _lines(20)
    lines[5] = f"{'x' * 2000},pos"
    path = _write(tmp_path / "train.csv", "\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"train\.csv, row 5 \(line 6\): a field is longer than"):
        load_from_files(train_file=path)


def test_a_row_with_more_fields_than_the_header_is_refused(tmp_path):
    lines = _lines(20)
    lines[3] = "good, but slow,pos"
    path = _write(tmp_path / "train.csv", "\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"train\.csv, row 3 \(line 4\): 3 fields, the header"):
        load_from_files(train_file=path)


# -- 8. instruction data ------------------------------------------------------------------------


def _alpaca(n: int) -> list[dict]:
    return [
        {"instruction": f"Say the number {i}.", "input": "" if i % 2 else f"in words {i}",
         "output": f"The number is {i}."} for i in range(n)
    ]  # fmt: skip


def test_instruction_files_are_read_as_alpaca_rows(tmp_path):
    train = _write(tmp_path / "train.json", json.dumps(_alpaca(50)))
    rows = _alpaca(60)[50:]
    test = _write(tmp_path / "test.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    task = load_from_files(train_file=train, test_file=test, problem="instruction")
    assert task.problem == "instruction" and task.label_names is None
    assert isinstance(task.train, InstructionSplit)
    assert task.sizes() == {"train": 45, "validation": 5, "test": 10}
    assert "Say the number 3." in task.train.instructions + task.validation.instructions


def test_instruction_files_need_the_alpaca_columns(tmp_path):
    train = _write(tmp_path / "train.json", json.dumps([{"instruction": "Hi.", "answer": "Hello"}]))
    with pytest.raises(ValueError, match=r"train\.json has no column 'output'"):
        load_from_files(train_file=train, problem="instruction")
    with pytest.raises(ValueError, match=r"task\.text_fields and task\.label_field do not apply"):
        load_from_files(train_file=train, problem="instruction", text_fields=["prompt"])


# -- 4. the classes, printed and recorded; one line at the command line --------------------------


def test_every_classification_run_records_its_labels(tmp_path):
    results = run_in_process(tmp_path, *TINY)
    assert results["status"] == "completed"
    assert results["labels"] == ["rotten", "fresh"]


def test_the_cli_prints_and_records_the_classes_of_a_users_file(tmp_path):
    train = _csv(tmp_path / "train.csv", ["1.0", "2", "1", "2.0", "10"] * 12)
    run = tmp_path / "run"
    proc = gelora_train(run, *TINY, "task=from_files", f"task.train_file={train}", "logger=none")
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(x for x in proc.stdout.splitlines() if "task from_files:" in x)
    assert "labels 0=1, 1=2, 2=10" in line
    assert json.loads((run / "results.json").read_text())["labels"] == ["1", "2", "10"]


def test_the_cli_refuses_a_bad_file_in_one_line(tmp_path):
    path = _write(tmp_path / "train.csv", "text,text,label\n" + "a,b,pos\nc,d,neg\n" * 10)
    proc = gelora_train(tmp_path / "run", *TINY, "task=from_files", f"task.train_file={path}")
    assert proc.returncode != 0
    errors = [x for x in proc.stderr.splitlines() if "error:" in x]
    assert len(errors) == 1 and "train.csv: column 'text' appears twice" in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_tiny_instruction_run_on_a_users_file(tmp_path):
    train = _write(tmp_path / "train.jsonl", "".join(json.dumps(r) + "\n" for r in _alpaca(60)))
    results = run_in_process(
        tmp_path / "run", "task=from_files", f"task.train_file={train}", "task.problem=instruction",
        "task.metrics=[response_loss,perplexity]", "model=tiny_llama", "debug=tiny",
        "task.max_length=128", "method=lora", "budget.rank=2",
    )  # fmt: skip
    assert results["status"] == "completed", results["error"]
    assert results["task_sizes"] == {"train": 48, "validation": 6, "test": 6}
    assert results["labels"] is None and results["metric"] == "response_loss"


def test_a_label_column_with_a_value_per_row_is_refused_as_an_id_column(tmp_path):
    # issue 43: an id column named as the label gave a 10,000-way head on 200 rows, no warning
    path = _csv(tmp_path / "train.csv", [f"row-{i}" for i in range(40)])
    with pytest.raises(ValueError, match=r"label column has 40 different values in 40 rows"):
        load_from_files(train_file=path)
    # listing the classes says they are meant: no refusal for that
    names = [f"row-{i}" for i in range(40)]
    assert len(load_from_files(train_file=path, label_names=names).label_names) == 40


def test_parquet_without_pandas_names_the_extra_to_install(tmp_path, monkeypatch):
    # issue 44: "task.loader: No module named 'pandas'" named neither the extra nor the command
    import builtins

    from gelora.data.tables import read_table

    path = tmp_path / "train.parquet"
    path.write_bytes(b"PAR1" + b"\0" * 16)
    real_import = builtins.__import__

    def no_pandas(name, *args, **kwargs):
        if name == "pandas":
            raise ImportError("No module named 'pandas'", name="pandas")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pandas)
    with pytest.raises(ValueError, match=r"pip install 'gelora\[parquet\]'") as error:
        read_table(path)
    assert "train.parquet" in str(error.value) and "pandas" in str(error.value)
