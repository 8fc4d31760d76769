"""``RunRecord``: the schema of ``results.json``, written by every run and read by ``gelora-table``.

A run fills it from its stages' results (``gelora.stages.record.build_record``); a run that stops
early (a failure, an interruption) still writes one, with the stages it reached and ``status``,
``error`` and ``traceback`` saying why. ``read_results`` is the only place that parses the file
(``RunRecord.read`` for a record; ``gelora-generate`` for its config as written), and
``update_results`` the only place that changes one already written (the IFBench rescorer).
"""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from gelora.atomic import write_json_atomic, write_text_atomic

STATUSES = ("running", "completed", "failed", "interrupted")
REDACTED = "<redacted>"

# Secret-looking key NAMES, matched as whole words: a key is split on ``_``, ``-``, ``.``, spaces
# and camelCase (``AWSSecretAccessKey`` -> aws secret access key), so that ``task.cache_tokens``,
# ``max_new_tokens``, ``tokenizer`` or ``key_padding`` are settings, kept in the record.
_SECRET_WORDS = frozenset(
    {"password", "passwd", "passphrase", "secret", "secrets", "credential", "credentials",
     "creds", "auth", "oauth", "authorization", "bearer", "cookie", "cookies"}
)  # fmt: skip
# ``token`` is a credential alone or after one of these (``hf_token``, ``access_token``), not
# after ``pad``, ``eos`` or ``max_new`` (a tokenizer's or a generation's setting).
_TOKEN_KINDS = frozenset(
    {"hf", "hub", "huggingface", "auth", "access", "api", "refresh", "id", "session", "bearer",
     "github", "gh", "gitlab", "wandb", "openai", "personal", "private", "security", "jwt", "sas",
     "slack", "bot", "client", "login", "user", "service"}
)  # fmt: skip
# ``key`` is a credential right after one of these (``api_key``, ``aws_access_key_id``), not alone
# or after ``sort`` or ``cache``.
_KEY_KINDS = frozenset(
    {"api", "access", "secret", "private", "session", "signing", "encryption", "ssh", "auth",
     "account", "master", "license", "subscription"}
)  # fmt: skip
_WORD = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")
_FUSED = re.compile(r"(api|access|secret|private|session|auth|hf|bearer)(key|token)")  # apikey

# Values that are credentials whatever their key: Hugging Face, OpenAI, AWS, GitHub, Slack tokens.
SECRET_VALUE = re.compile(
    r"\bhf_[A-Za-z0-9]{30,}\b"
    r"|\bsk-[A-Za-z0-9_-]{20,}"
    r"|\b(?:AKIA|ASIA)[A-Z0-9]{16}\b"
    r"|\bgh[pousr]_[A-Za-z0-9]{30,}\b"
    r"|\bgithub_pat_[A-Za-z0-9_]{22,}"
    r"|\bxox[abposr]-[A-Za-z0-9-]{10,}"
)
_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^/\s:@]+:)[^/\s@]+(?=@)", re.I)


def _words(key: str) -> list[str]:
    words = []
    for part in re.split(r"[^A-Za-z0-9]+", key):
        for word in _WORD.findall(part):
            fused = _FUSED.fullmatch(word.lower())
            words.extend(fused.groups() if fused else [word.lower()])
    return words


def is_secret_key(key: Any) -> bool:
    """Whether a config key names a credential: a word such as ``password``, ``secret``,
    ``auth`` or ``credentials``, a ``token`` alone or of a credential kind (``hf_token``,
    ``access_token``), or a ``key`` of one (``api_key``, ``aws_secret_access_key``)."""
    words = _words(str(key))
    if _SECRET_WORDS.intersection(words):
        return True
    if words and words[-1] == "token" and (len(words) == 1 or words[-2] in _TOKEN_KINDS):
        return True
    return any(a in _KEY_KINDS and b == "key" for a, b in itertools.pairwise(words))


def _redact_value(value: str) -> str:
    if SECRET_VALUE.search(value):
        return REDACTED
    return _URL_PASSWORD.sub(lambda m: m.group("head") + REDACTED, value)


def redact_secrets(value: Any) -> Any:
    """A copy of a config tree with the value of every secret-looking key (``is_secret_key``)
    replaced, and every string that looks like a credential (``SECRET_VALUE``; a password in a
    URL) replaced whatever its key, so secrets a user passed as overrides never reach
    ``results.json`` or an experiment logger."""
    if isinstance(value, dict):
        return {
            k: REDACTED if is_secret_key(k) and v is not None else redact_secrets(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact_secrets(v) for v in value]
    if isinstance(value, str):
        return _redact_value(value)
    return value


@dataclass(frozen=True)
class RunRecord:
    """One run, as ``results.json`` holds it. Fields a run did not reach are ``None``.

    Attributes (beyond the self-explanatory):
        variant: the table row (the ``method`` config, e.g. ``gelora_budget``), else ``method``.
        labels: a classification task's class names in index order (index ``i`` is class
            ``labels[i]``); ``None`` for other tasks.
        id_sample: ``requested`` (``estimator.n_samples``), ``used`` (texts), ``note``; once the
            profile exists, ``points`` (what the ID was estimated on: texts, or tokens under
            ``token`` pooling, near-copies dropped), ``tokens_per_text`` and ``short_texts``
            (texts with fewer usable tokens) under ``token`` pooling, and ``dedup``: ``rule``
            (``none`` | ``near``) and, for ``near``, ``threshold``, ``radius``,
            ``points_before``, ``dropped``, ``text_copies`` and ``near_copies``.
        eval_rows: per evaluation split (``validation``, ``test``, ``test_<name>``), ``rows``
            and ``sha256`` (``Split.fingerprint``): runs are paired only on equal test rows.
        scaling: the LoRA scaling rule every adapter of the run used: ``rule``
            (``constant`` | ``rslora``), ``scale`` and ``text`` (e.g. ``alpha/r = 2``).
        learning_rate: ``optimizer.lr``, the adapters' peak learning rate.
        intrinsic_dims: one ID per hidden-state layer, the embeddings output first.
        budget_params: the budget in parameters on this model's targets.
        metric: the task's primary metric; ``metrics`` holds ``test/<m>``, ``val/<m>``,
            ``val/<m>_best`` for every metric of the task.
        metric_modes: each metric's direction, as its task kind states it (``TaskKind.
            metric_mode``): ``max`` (higher is better) or ``min`` (a loss), so that a reader
            (``gelora-table``) needs no list of metrics beside the record; ``None`` in records
            written before it.
        stopped_early: whether ``early_stopping.patience`` ended training before its step or
            epoch cap (``best_step`` and ``optimizer_steps`` say where the best and the last were).
        method_summary: what a method adds (AdaLoRA: schedule, final ranks, budget history).
        distributed: the adapter fingerprint of every process, and where the plan came from.
        benchmarks: an instruction task's generation benchmarks: ``files`` (IFBench verdicts,
            MT-Bench answers) and ``ifbench_unscored`` (instruction id -> count left unscored);
            the scores are in ``metrics`` as ``test/ifbench_...``.
        environment: ``torch``, ``python``, ``device``, library versions and ``gelora_commit``
            (``gelora.stages.provenance``: the commit, ``+dirty`` with uncommitted ``src/``/
            ``conf/``).
        timings: seconds per phase (``id_estimation_s``, ``fit_s``, ``test_s``, ...) and
            ``total_s``.
        cost: what the run took: ``peak_rss_mb`` (the process's peak resident memory),
            ``cuda_peak_allocated_mb`` (torch's peak CUDA allocation; None without CUDA), and
            training throughput over this process's training (since the resume, in a resumed
            run): ``train_samples``, ``train_tokens`` (non-padding tokens), ``train_s``,
            ``samples_per_s``, ``tokens_per_s``.
    """

    status: str
    model: str
    task: str
    seed: int
    variant: str | None = None
    method: str | None = None
    budget: dict[str, Any] | None = None
    budget_params: int | None = None
    task_sizes: dict[str, int] | None = None
    task_notes: list[str] | None = None
    labels: list[str] | None = None
    id_sample: dict[str, Any] | None = None
    eval_rows: dict[str, dict[str, Any]] | None = None
    scaling: dict[str, Any] | None = None
    learning_rate: float | None = None
    intrinsic_dims: list[float] | None = None
    id_profile: dict[str, Any] | None = None
    pooling: str | None = None
    id_profile_cache: dict[str, str] | None = None
    token_cache: dict[str, str] | None = None
    resumed_from: dict[str, Any] | None = None
    rank_sensitivity: dict[str, Any] | None = None
    ranks: dict[str, int] | None = None
    alphas: dict[str, float] | None = None
    block_ranks: list[int] | None = None
    rank_plan_notes: list[str] | None = None
    planned_adapter_params: int | None = None
    metric: str | None = None
    metric_names: list[str] | None = None
    metric_modes: dict[str, str] | None = None
    metrics: dict[str, float] | None = None
    test_checkpoint: str | None = None
    optimizer_steps: int | None = None
    stopped_early: bool | None = None
    best_step: int | None = None
    trainable_adapter_params: int | None = None
    trainable_params: int | None = None
    total_params: int | None = None
    method_summary: dict[str, Any] | None = None
    distributed: dict[str, Any] | None = None
    adapter_dir: str | None = None
    benchmarks: dict[str, Any] | None = None
    environment: dict[str, str] | None = None
    timings: dict[str, float] = field(default_factory=dict)
    cost: dict[str, Any] | None = None
    error: str | None = None
    traceback: str | None = None
    config: Any = None

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}, got {self.status!r}")

    @property
    def test_score(self) -> float | None:
        """The primary metric on the test split, or ``None`` if the run did not get there."""
        if self.metric is None or not self.metrics:
            return None
        return self.metrics.get(f"test/{self.metric}")

    @property
    def test_rows_sha256(self) -> str | None:
        """The fingerprint of the test rows the run was scored on (``eval_rows``), or ``None``
        for a record older than fingerprints: runs pair only on equal ones."""
        return ((self.eval_rows or {}).get("test") or {}).get("sha256")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def write(self, path: Path) -> Path:
        return write_json_atomic(path, self.to_dict())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunRecord:
        """A record from ``results.json``'s content; keys this version does not know are
        ignored, and fields an older version did not write are ``None``."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values.setdefault("status", "failed")
        for key in ("model", "task"):
            values.setdefault(key, "?")
        values.setdefault("seed", None)
        if "adalora" in data and values.get("method_summary") is None:  # before method_summary
            values["method_summary"] = data["adalora"]
        return cls(**values)

    @classmethod
    def read(cls, path: Path) -> RunRecord:
        """Raises ``OSError`` (no file) or ``ValueError`` (not JSON, or not a run record)."""
        return cls.from_dict(read_results(path))


def read_results(path: Path) -> dict[str, Any]:
    """``results.json``'s content as written, keys of every version kept.

    Raises:
        OSError: no file.
        ValueError: not JSON (``json.JSONDecodeError``, ``UnicodeDecodeError``), or not a JSON
            object.
    """
    data = json.loads(Path(path).read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{path} holds no run record")
    return data


def update_results(path: Path, **changes: Any) -> None:
    """Replace top-level fields of a written ``results.json``, every other field as it was (keys
    of older versions included), in one atomic write that keeps the file's final newline."""
    text = Path(path).read_text()
    payload = read_results(path) | changes
    ending = "\n" if text.endswith("\n") else ""
    write_text_atomic(path, json.dumps(payload, indent=2, default=str) + ending)
