"""Loading a pretrained model with a task head, and finding the linear maps to adapt.

A model config names where its weights come from (an offline ``asset`` or a hub ``pretrained``
id), the dotted path of its ``nn.ModuleList`` of blocks, and its target modules by their names
relative to a block, so that ``output.dense`` cannot be confused with ``attention.output.dense``.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch import nn

from gelora.assets import asset_path
from gelora.errors import ConfigError
from gelora.logs import logged_as_debug
from gelora.ranks.plan import TargetModule

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

log = logging.getLogger(__name__)
LISTED_KEYS = 8  # weight names a warning lists before "... (N in all)"


def resolve_source(asset: str | None, pretrained: str | None) -> str:
    """A local folder for an offline asset, else the hub id (or local path) as given."""
    if (asset is None) == (pretrained is None):
        raise ValueError("a model config needs exactly one of `asset` and `pretrained`")
    return str(asset_path(asset)) if asset is not None else str(pretrained)


# The head a task kind puts on the pretrained model: the name of its ``transformers`` Auto class.
HEADS = {
    "sequence_classification": "AutoModelForSequenceClassification",
    "question_answering": "AutoModelForQuestionAnswering",  # start and end logits per token
    "causal_lm": "AutoModelForCausalLM",  # the decoder's own LM head: no new module
}


def auto_model_class(head: str):
    """The ``transformers`` Auto class that builds a model with ``head``."""
    import transformers

    if head not in HEADS:
        raise ValueError(f"head must be one of {', '.join(HEADS)}, got {head!r}")
    return getattr(transformers, HEADS[head])


@dataclass(frozen=True)
class ModelSpec:
    """Where a model comes from and how to build it with its task head: built once per run, from
    the model config and the task, and used both for the weight-free shape check and the load.

    Attributes:
        asset: an offline asset's name (``gelora.assets``), or ``None`` with ``pretrained``.
        pretrained: a hub id or local folder, or ``None`` with ``asset``.
        num_labels: classes of the new head (1 for regression, 2 for a QA head: start and end;
            not passed on for a causal LM, which keeps its vocabulary head).
        problem_type: Hugging Face's ``config.problem_type``, which picks the loss:
            ``single_label_classification`` (cross-entropy) or ``regression`` (MSE).
        gguf_file: a GGUF file inside the source folder (dequantised on load; needs ``gguf``).
        random_init: build the architecture with these config changes and random weights instead
            of loading them (tiny models for tests and smoke runs); the tokenizer is the source's.
        head: a key of ``HEADS``: sequence classification (and regression), span extraction
            (``question_answering``) or a decoder's next-token head (``causal_lm``).
    """

    asset: str | None
    pretrained: str | None
    num_labels: int
    problem_type: str | None = None
    trust_remote_code: bool = False
    gguf_file: str | None = None
    random_init: Mapping[str, Any] | None = None
    head: str = "sequence_classification"

    @classmethod
    def from_config(
        cls,
        model_cfg: Mapping[str, Any],
        num_labels: int,
        problem_type: str | None = None,
        head: str = "sequence_classification",
    ) -> ModelSpec:
        random_init = model_cfg.get("random_init")
        return cls(
            asset=model_cfg.get("asset"),
            pretrained=model_cfg.get("pretrained"),
            num_labels=num_labels,
            problem_type=problem_type,
            trust_remote_code=bool(model_cfg.get("trust_remote_code", False)),
            gguf_file=model_cfg.get("gguf_file"),
            random_init=dict(random_init) if random_init is not None else None,
            head=head,
        )

    @property
    def portable_name(self) -> str | None:
        """The model's name for files that leave this machine (an adapter's config): the hub id,
        or the offline asset's name and pinned carrier, never a path into one machine's cache;
        ``None`` for a model built with random weights (``random_init``: ``tiny_bert``,
        ``tiny_llama``), whose source lends only its architecture and tokenizer: naming it would
        claim a base model whose weights the adapter was never trained on."""
        if self.random_init is not None:
            return None
        if self.pretrained is not None:
            return str(self.pretrained)
        from gelora.assets import ASSETS, CONVERTED_ASSETS

        if self.asset in ASSETS:
            return f"gelora-asset:{self.asset} ({ASSETS[self.asset].requirement})"
        if self.asset in CONVERTED_ASSETS:
            return f"gelora-asset:{self.asset} (conversion {CONVERTED_ASSETS[self.asset].version})"
        return f"gelora-asset:{self.asset}"

    @property
    def source(self) -> str:
        """The local folder or hub id the weights and tokenizer load from (fetches an asset)."""
        return resolve_source(self.asset, self.pretrained)

    @property
    def head_arguments(self) -> dict[str, Any]:
        """What ``from_pretrained`` is told about the head: its outputs and loss, none for a
        causal LM (its head is the pretrained one)."""
        if self.head == "causal_lm":
            return {}
        head: dict[str, Any] = {"num_labels": self.num_labels}
        if self.problem_type is not None:
            head["problem_type"] = self.problem_type
        return head

    def _config(self):
        """The model's config with the head's arguments and ``random_init``'s changes; a fresh
        copy on every call of one read per source (a GGUF file's config takes seconds)."""
        config = copy.deepcopy(
            _read_config(
                self.source,
                self.trust_remote_code,
                self.gguf_file,
                tuple(sorted(self.head_arguments.items())),
            )
        )
        for key, value in (self.random_init or {}).items():
            if not hasattr(config, key):
                raise ValueError(f"model.random_init: {type(config).__name__} has no {key!r}")
            setattr(config, key, value)
        return config


@functools.lru_cache(maxsize=8)
def _read_config(
    source: str, trust_remote_code: bool, gguf_file: str | None, head: tuple[tuple[str, Any], ...]
):
    from transformers import AutoConfig

    gguf = {"gguf_file": gguf_file} if gguf_file is not None else {}
    return AutoConfig.from_pretrained(
        source, trust_remote_code=trust_remote_code, **gguf, **dict(head)
    )


# Config attributes that bound the positions a model reads, by architecture family: BERT-likes
# and decoders (``max_position_embeddings``), GPT-2 (``n_positions``), others.
POSITION_KEYS = ("max_position_embeddings", "n_positions", "max_sequence_length")
# RoBERTa and its kin count positions from ``padding_idx + 1``: 514 embeddings hold 512 tokens.
PADDING_OFFSET_TYPES = frozenset(
    {"roberta", "xlm-roberta", "xlm-roberta-xl", "camembert", "data2vec-text", "xmod",
     "roberta-prelayernorm", "longformer", "ibert", "mpnet"}
)  # fmt: skip


def position_limit(config) -> tuple[int, str] | None:
    """The most tokens the model's position embeddings take, and the config attribute it comes
    from; ``None`` for a model without absolute positions (DeBERTa-v3: relative ones only)."""
    if getattr(config, "position_biased_input", True) is False:
        return None
    for key in POSITION_KEYS:
        value = getattr(config, key, None)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            if getattr(config, "model_type", None) in PADDING_OFFSET_TYPES:
                value -= (getattr(config, "pad_token_id", None) or 0) + 1
            return value, key
    return None


def check_max_length(spec: ModelSpec, max_length: int) -> None:
    """Refuse a ``task.max_length`` beyond the model's positions, from its config alone (read
    once per source and reused by the shape check and a random-weight build; no weights).

    Raises:
        ConfigError: ``task.max_length must be at most <limit>, the positions of model <name>
            (<Config>.<attribute>), got <max_length>``.
    """
    config = spec._config()
    limit = position_limit(config)
    if limit is not None and max_length > limit[0]:
        raise ConfigError(
            f"task.max_length must be at most {limit[0]}, the positions of model "
            f"{spec.pretrained or spec.asset} ({type(config).__name__}.{limit[1]}), "
            f"got {max_length}"
        )


def load_classifier(
    spec: ModelSpec, head_modules: Sequence[str] = ()
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The model with its new head (``spec.head``: a sequence classifier by default) and its
    tokenizer; only the head is freshly initialised.

    ``head_modules`` (the model config's, for this head) name the modules whose weights the
    checkpoint is expected to lack: they are reported in one line, ``new head:
    ...``; a missing weight elsewhere is a warning. transformers' own load report goes to the log
    file only.
    """
    from transformers import AutoTokenizer

    auto_class = auto_model_class(spec.head)
    gguf = {"gguf_file": spec.gguf_file} if spec.gguf_file is not None else {}
    tokenizer = AutoTokenizer.from_pretrained(
        spec.source, trust_remote_code=spec.trust_remote_code, **gguf
    )
    if spec.random_init is not None:
        model = auto_class.from_config(spec._config())
    else:
        with _quiet_load(spec.source):
            model, loading_info = auto_class.from_pretrained(
                spec.source,
                trust_remote_code=spec.trust_remote_code,
                output_loading_info=True,
                **gguf,
                **spec.head_arguments,
            )
        report_new_weights(loading_info, head_modules)
    if tokenizer.pad_token is None:  # decoders (Llama, GPT-2) ship without one
        tokenizer.pad_token = tokenizer.eos_token
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


@contextlib.contextmanager
def _quiet_load(source: str) -> Iterator[None]:
    """transformers' load report as DEBUG records, and no "Loading weights" bar for a local
    folder (a load of seconds at most; a download from the hub keeps its bars)."""
    from transformers.utils import logging as transformers_logging

    hide_bar = Path(source).is_dir() and transformers_logging.is_progress_bar_enabled()
    if hide_bar:
        transformers_logging.disable_progress_bar()
    try:
        with logged_as_debug("transformers.modeling_utils"):
            yield
    finally:
        if hide_bar:
            transformers_logging.enable_progress_bar()


def report_new_weights(loading_info: Mapping[str, Any], head_modules: Sequence[str]) -> None:
    """One line for the weights the checkpoint lacked: the new head (expected), or a warning for
    any weight outside ``head_modules``; checkpoint weights the model did not use, at DEBUG."""
    missing = sorted(loading_info.get("missing_keys") or (), key=_weight_first)
    in_head = [key for key in missing if _in_modules(key, head_modules)]
    elsewhere = [key for key in missing if key not in in_head]
    if in_head:
        log.info("new head: %s", ", ".join(in_head))
    if elsewhere:
        log.warning(
            "weights missing from the checkpoint, randomly initialised: %s", _listed(elsewhere)
        )
    unexpected = sorted(loading_info.get("unexpected_keys") or ())
    if unexpected:
        log.debug("checkpoint weights the model does not use: %s", _listed(unexpected))


def _in_modules(key: str, modules: Sequence[str]) -> bool:
    return any(key == module or key.startswith(f"{module}.") for module in modules)


def _weight_first(key: str) -> tuple[str, bool, str]:
    module, _, name = key.rpartition(".")
    return module, name != "weight", name


def _listed(keys: Sequence[str]) -> str:
    shown = ", ".join(keys[:LISTED_KEYS])
    return shown if len(keys) <= LISTED_KEYS else f"{shown}, ... ({len(keys)} in all)"


def targets_without_weights(
    spec: ModelSpec, blocks: str, target_modules: Sequence[str]
) -> list[TargetModule]:
    """The target modules and their shapes from the model's config alone, built on the meta
    device (no weights read, no memory used), so config errors surface before any loading.

    Raises:
        ValueError: as ``find_target_modules`` (unknown blocks path or target module).
    """
    import torch

    with torch.device("meta"):
        model = auto_model_class(spec.head).from_config(
            spec._config(), trust_remote_code=spec.trust_remote_code
        )
    return find_target_modules(model, blocks, target_modules)


def find_target_modules(
    model: nn.Module, blocks: str, target_modules: Sequence[str]
) -> list[TargetModule]:
    """Every target linear map of every block, in block order.

    Args:
        blocks: dotted path of the model's ``nn.ModuleList`` of transformer blocks.
        target_modules: module names relative to a block, e.g. ``attention.self.query``.

    Raises:
        ValueError: the blocks path is not a module list, or a target is missing or not linear.
    """
    try:
        block_list = model.get_submodule(blocks)
    except AttributeError as error:
        raise ValueError(f"model.blocks={blocks!r} names no module of this model") from error
    if not isinstance(block_list, nn.ModuleList):
        raise ValueError(
            f"model.blocks={blocks!r} is a {type(block_list).__name__}, not a ModuleList"
        )
    if not target_modules:
        raise ValueError("model.target_modules is empty")
    found = []
    for index, block in enumerate(block_list):
        for relative in target_modules:
            try:
                module = block.get_submodule(relative)
            except AttributeError as error:
                available = sorted(n for n, m in block.named_modules() if isinstance(m, nn.Linear))
                raise ValueError(
                    f"unknown target module {relative!r} in block {index}; "
                    f"linear modules there: {', '.join(available)}"
                ) from error
            base = getattr(module, "base_layer", module)
            if not isinstance(base, nn.Linear):
                raise ValueError(
                    f"target module {relative!r} is a {type(base).__name__}, not linear"
                )
            found.append(
                TargetModule(
                    name=f"{blocks}.{index}.{relative}",
                    block=index,
                    in_features=base.in_features,
                    out_features=base.out_features,
                )
            )
    return found
