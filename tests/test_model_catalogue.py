"""Every model config finds every block and matrix of its architecture, and MiniLM-L3's
conversion from ONNX reproduces the ONNX graph's own output."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn
from transformers import (
    AutoModelForSequenceClassification,
    BertConfig,
    DebertaV2Config,
    LlamaConfig,
    MPNetConfig,
    RobertaConfig,
)

from gelora.lora.inject import count_lora_parameters, inject_lora, lora_layers, mark_trainable
from gelora.models import find_target_modules
from gelora.ranks import UniformPolicy

MODEL_CONF = Path(__file__).resolve().parents[1] / "conf" / "model"
SMALL = {"hidden_size": 32, "num_attention_heads": 4, "intermediate_size": 64}
ENCODER = {**SMALL, "vocab_size": 100, "num_hidden_layers": 3, "max_position_embeddings": 64}

# A tiny randomly initialised model of each config's architecture (no download).
TINY_CONFIGS = {
    "minilm_l6": lambda: BertConfig(**ENCODER),
    "minilm_l3": lambda: BertConfig(**ENCODER),
    "tiny_bert": lambda: BertConfig(**ENCODER),
    "bert_base_uncased": lambda: BertConfig(**ENCODER),
    "roberta_base": lambda: RobertaConfig(**ENCODER, pad_token_id=1),
    "deberta_v3_base": lambda: DebertaV2Config(**ENCODER),
    "mpnet_base": lambda: MPNetConfig(**ENCODER, pad_token_id=1),
    "smollm2_135m": lambda: LlamaConfig(
        **SMALL, vocab_size=100, num_hidden_layers=3, num_key_value_heads=2, pad_token_id=0
    ),
    "smollm2_1_7b": lambda: LlamaConfig(
        **SMALL, vocab_size=100, num_hidden_layers=3, num_key_value_heads=2, pad_token_id=0
    ),
    "tiny_llama": lambda: LlamaConfig(
        **SMALL, vocab_size=100, num_hidden_layers=3, num_key_value_heads=2, pad_token_id=0
    ),
}


def test_every_model_config_has_a_tiny_twin_here():
    assert {p.stem for p in MODEL_CONF.glob("*.yaml")} == set(TINY_CONFIGS)


@pytest.mark.parametrize("name", sorted(TINY_CONFIGS))
def test_model_config_finds_every_block_and_matrix(name):
    cfg = OmegaConf.load(MODEL_CONF / f"{name}.yaml")
    assert cfg.name == name and cfg.trust_remote_code is False
    assert (cfg.asset is None) != (cfg.pretrained is None)
    torch.manual_seed(0)
    config = TINY_CONFIGS[name]()
    config.num_labels = 3
    model = AutoModelForSequenceClassification.from_config(config)
    targets = find_target_modules(model, cfg.blocks, list(cfg.target_modules))
    blocks = model.get_submodule(cfg.blocks)
    assert len(targets) == len(blocks) * len(cfg.target_modules) == 3 * len(cfg.target_modules)
    # Every linear map of every block is a target: nothing adaptable is left out.
    for index, block in enumerate(blocks):
        linear = {n for n, m in block.named_modules() if isinstance(m, nn.Linear)}
        assert linear == set(cfg.target_modules), f"block {index}"
    plan = UniformPolicy(rank=2).plan(targets, [1.0] * (len(blocks) + 1))
    inject_lora(model, plan)
    mark_trainable(model, list(cfg.head_modules))
    assert len(lora_layers(model)) == len(targets)
    assert count_lora_parameters(model) == plan.trainable_adapter_params
    trainable = {n.split(".lora_")[0] for n, p in model.named_parameters() if p.requires_grad}
    assert {t.name for t in targets} <= trainable
    for head in cfg.head_modules:
        assert all(p.requires_grad for p in model.get_submodule(head).parameters())
    batch = {"input_ids": torch.randint(2, 100, (2, 7)), "labels": torch.tensor([0, 2])}
    model(**batch).loss.backward()  # gradients reach the adapters through every block
    assert type(blocks[0]).__name__ == cfg.block_class  # FSDP's unit (trainer=fsdp)


@pytest.mark.parametrize("name", sorted(TINY_CONFIGS))
def test_shared_input_groups_really_read_one_tensor(name):
    """``shared_inputs`` is only a speed-up, but a wrong group would waste it: check that the
    members of every group receive the very same input tensor in a forward pass."""
    cfg = OmegaConf.load(MODEL_CONF / f"{name}.yaml")
    model = AutoModelForSequenceClassification.from_config(TINY_CONFIGS[name]())
    block = model.get_submodule(cfg.blocks)[0]
    seen: dict[str, int] = {}
    hooks = [
        block.get_submodule(rel).register_forward_pre_hook(
            lambda module, args, rel=rel: seen.__setitem__(rel, id(args[0]))
        )
        for group in cfg.shared_inputs
        for rel in group
    ]
    model(input_ids=torch.randint(2, 100, (2, 7)))
    for hook in hooks:
        hook.remove()
    for group in cfg.shared_inputs:
        assert set(group) <= set(cfg.target_modules)
        assert len({seen[rel] for rel in group}) == 1, group


def test_minilm_l3_conversion_matches_the_onnx_graph():
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from transformers import AutoModel, AutoTokenizer

    from gelora.assets import asset_path
    from gelora.assets.onnx_bert import LAST_HIDDEN_STATE_OUTPUT, ONNX_FILE

    folder = asset_path("paraphrase-minilm-l3-v2")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder).eval()
    assert model.config.num_hidden_layers == 3
    encoded = tokenizer(
        ["A man is playing a guitar.", "The movie was a total waste of two good hours, sadly."],
        padding=True,
        return_tensors="pt",
    )
    with torch.no_grad():
        ours = model(**encoded).last_hidden_state
    session = ort.InferenceSession(str(asset_path("paraphrase-minilm-l3-v2-onnx") / ONNX_FILE))
    feeds = {k: encoded[k].numpy() for k in ("input_ids", "attention_mask")}
    (reference,) = session.run([LAST_HIDDEN_STATE_OUTPUT], feeds)
    mask = encoded["attention_mask"].bool()
    difference = (ours - torch.from_numpy(reference)).abs()[mask]  # padding rows are unused
    assert difference.max().item() < 1e-4
    assert ours[mask].abs().mean().item() > 0.1  # not trivially zero


def test_minilm_l3_state_dict_is_contiguous_for_any_safetensors():
    """ONNX keeps ``x @ W``; the transposed matrices must be laid out row-major, since older
    safetensors releases refuse a non-contiguous tensor (the clean-cache failure of issue 12)."""
    pytest.importorskip("onnx")
    from gelora.assets import asset_path
    from gelora.assets.onnx_bert import ONNX_FILE, bert_state_dict_from_onnx

    state = bert_state_dict_from_onnx(asset_path("paraphrase-minilm-l3-v2-onnx") / ONNX_FILE)
    query = state["bert.encoder.layer.0.attention.self.query.weight"]
    assert query.shape == (384, 384)
    assert [name for name, tensor in state.items() if not tensor.is_contiguous()] == []
