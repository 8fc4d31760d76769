"""``estimator.pooling``: k seeded non-special tokens per text, the last token, mean and cls;
their config checks and their place in the profile cache key."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from gelora.config.checks import check_config
from gelora.errors import ConfigError
from gelora.geometry.hidden_states import collect_hidden_sample, last_positions, token_positions
from gelora.stages.profile import EstimatorSettings, profile_key
from gelora.stages.profile_cache import ProfileKey
from tests.helpers import TINY, compose_train

TEXTS = [" ".join(f"w{(i * 7 + j) % 95}" for j in range(2 + i % 6)) for i in range(10)]


def states_alone(model, tiny_tokenizer, text: str) -> tuple[torch.Tensor, list[int]]:
    """``(L + 1, length, width)`` hidden states of ``text`` alone (no padding), and its ids."""
    encoded = tiny_tokenizer([text], return_tensors="pt")
    with torch.no_grad():
        outputs = model(**encoded, output_hidden_states=True)
    return torch.stack(outputs.hidden_states)[:, 0], encoded["input_ids"][0].tolist()


def test_token_pooling_reads_k_non_special_tokens_at_every_layer(tiny_bert, tiny_tokenizer):
    sample = collect_hidden_sample(
        tiny_bert, tiny_tokenizer, TEXTS, pooling="token", tokens_per_text=2, batch_size=4, seed=3
    )
    assert sample.states.shape == (4, 2 * len(TEXTS), 32)  # every text has >= 2 words
    assert sample.text_index.tolist() == [i for i in range(len(TEXTS)) for _ in range(2)]
    assert sample.n_short_texts == 0
    for point, (text, position) in enumerate(zip(sample.text_index, sample.position, strict=True)):
        alone, ids = states_alone(tiny_bert, tiny_tokenizer, TEXTS[text])
        assert 0 < position < len(ids) - 1  # never [CLS] (first), [SEP] (last) or padding
        assert ids[position] not in (tiny_tokenizer.cls_token_id, tiny_tokenizer.sep_token_id)
        # By hand: the positions whose last-layer vector is this point's; the same one at
        # every layer, so layer l and l + 1 hold the same token.
        matches = [
            p
            for p in range(len(ids))
            if torch.allclose(alone[-1, p], sample.states[-1, point], atol=1e-5)
        ]
        assert matches == [int(position)]
        for layer in range(4):
            torch.testing.assert_close(
                sample.states[layer, point], alone[layer, position], atol=1e-5, rtol=1e-5
            )
    pairs = sample.position.view(len(TEXTS), 2)
    assert (pairs[:, 0] < pairs[:, 1]).all()  # two distinct positions per text
    again = collect_hidden_sample(
        tiny_bert, tiny_tokenizer, TEXTS, pooling="token", tokens_per_text=2, batch_size=4, seed=3
    )
    assert torch.equal(again.states, sample.states)
    other = collect_hidden_sample(
        tiny_bert, tiny_tokenizer, TEXTS, pooling="token", tokens_per_text=2, batch_size=4, seed=4
    )
    assert not torch.equal(other.position, sample.position)


def test_token_pooling_takes_all_a_short_text_has_and_counts_it(tiny_bert, tiny_tokenizer):
    texts = ["w1", "w2 w3 w4 w5", "w6 w7"]
    sample = collect_hidden_sample(
        tiny_bert, tiny_tokenizer, texts, pooling="token", tokens_per_text=3
    )
    assert sample.text_index.tolist() == [0, 1, 1, 1, 2, 2]
    assert sample.position.tolist()[:1] == [1] and sample.position.tolist()[4:] == [1, 2]
    assert sample.n_short_texts == 2


def test_token_positions_leave_out_special_tokens_and_padding():
    mask = torch.tensor([[1, 1, 1, 1, 0], [0, 1, 1, 1, 1]])
    special = torch.tensor([[1, 0, 0, 1, 1], [1, 1, 0, 0, 1]])
    rows, positions = token_positions(mask, 5, torch.Generator().manual_seed(0), special)
    assert rows.tolist() == [0, 0, 1, 1] and positions.tolist() == [1, 2, 2, 3]


def test_last_positions_with_left_and_right_padding():
    right = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    left = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    assert last_positions(right).tolist() == [2, 4]
    assert last_positions(left).tolist() == [4, 4]


@pytest.mark.parametrize("side", ["right", "left"])
def test_last_pooling_reads_the_last_real_token(tiny_bert, tiny_tokenizer, side):
    tiny_tokenizer.padding_side = side
    encoded = tiny_tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = torch.stack(tiny_bert(**encoded, output_hidden_states=True).hidden_states)
    mask = encoded["attention_mask"]
    last = mask.sum(dim=1) - 1 if side == "right" else torch.full((len(TEXTS),), mask.shape[1] - 1)
    assert (
        encoded["input_ids"][torch.arange(len(TEXTS)), last].eq(tiny_tokenizer.sep_token_id).all()
    )
    sample = collect_hidden_sample(tiny_bert, tiny_tokenizer, TEXTS, pooling="last", batch_size=32)
    expected = hidden[:, torch.arange(len(TEXTS)), last]
    torch.testing.assert_close(sample.states, expected, atol=1e-5, rtol=1e-5)
    assert sample.position.tolist() == last.tolist()


def test_mean_and_cls_are_as_before(tiny_bert, tiny_tokenizer):
    mean = collect_hidden_sample(tiny_bert, tiny_tokenizer, TEXTS, pooling="mean", batch_size=3)
    cls = collect_hidden_sample(tiny_bert, tiny_tokenizer, TEXTS, pooling="cls", batch_size=3)
    for row, text in enumerate(TEXTS):
        alone, _ = states_alone(tiny_bert, tiny_tokenizer, text)
        torch.testing.assert_close(mean.states[:, row], alone.mean(dim=1), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(cls.states[1:, row], alone[1:, 0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(cls.states[0], mean.states[0])  # layer 0: the mean, as before
    assert mean.text_index.tolist() == list(range(len(TEXTS))) and mean.n_short_texts == 0


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("estimator.pooling=max", "estimator.pooling"),
        ("estimator.tokens_per_text=0", "estimator.tokens_per_text"),
        ("estimator.dedup=fuzzy", "estimator.dedup"),
        ("estimator.dedup_threshold=-0.1", "estimator.dedup_threshold"),
    ],
)
def test_config_checks_name_the_bad_key(override, key):
    with pytest.raises(ConfigError) as error:
        check_config(compose_train(*TINY, override))
    message = str(error.value)
    assert message.startswith(key) and "\n" not in message


def test_new_values_pass_the_config_checks():
    check_config(
        compose_train(
            *TINY, "estimator.pooling=last", "estimator.dedup=near", "estimator.tokens_per_text=4"
        )
    )
    cfg = compose_train(*TINY)
    settings = EstimatorSettings.from_config(cfg.estimator)
    assert (settings.tokens_per_text, settings.dedup, settings.dedup_threshold) == (1, "none", 0.1)


def test_cache_key_follows_pooling_tokens_per_text_and_dedup(tiny_bert, tiny_tokenizer):
    backbone = SimpleNamespace(
        model=tiny_bert, tokenizer=tiny_tokenizer, adapt_settings=SimpleNamespace(head_modules=())
    )

    def key(**settings) -> ProfileKey:
        return profile_key(
            backbone, TEXTS, None, "twonn", EstimatorSettings(**settings), 128, "cpu"
        )

    digests = {
        name: key(**settings).digest
        for name, settings in {
            "mean": {},
            "cls": {"pooling": "cls"},
            "last": {"pooling": "last"},
            "token1": {"pooling": "token"},
            "token2": {"pooling": "token", "tokens_per_text": 2},
            "near": {"dedup": "near"},
            "near2": {"dedup": "near", "dedup_threshold": 0.2},
        }.items()
    }
    assert len(set(digests.values())) == len(digests)
    assert key(tokens_per_text=3).digest == digests["mean"]  # k means nothing to mean pooling
    # mean and cls without dedup: the key (and digest) of the entries written before these keys
    plain = key()
    assert "tokens_per_text" not in plain.fields() and "dedup" not in plain.fields()
    assert key(pooling="token").fields()["tokens_per_text"] == 1
