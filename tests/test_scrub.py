"""The secret scrubber's edge cases: overlapping and nested secrets, short values, regex
metacharacters, encoded forms, credential shapes, data walks and the log filter."""

from __future__ import annotations

import logging

import pytest

from relayflow.scrub import (
    MASK,
    MIN_SECRET_LENGTH,
    SecretScrubber,
    get_logger,
    mask_credentials,
    remember,
    url_secrets,
)


def test_each_configured_secret_is_masked_wherever_it_occurs() -> None:
    scrub = SecretScrubber(["sk-test-SECRET123"])
    text = 'HTTP 401: {"message": "Incorrect API key: sk-test-SECRET123"} sk-test-SECRET123'
    assert scrub.values(text) == f'HTTP 401: {{"message": "Incorrect API key: {MASK}"}} {MASK}'


def test_overlapping_secrets_are_masked_together_leaving_no_tail() -> None:
    scrub = SecretScrubber(["abcdefgh12", "gh12345678"])
    # a regex alternation would stop after the first and leave "345678" of the second showing
    assert scrub.values("x abcdefgh12345678 y") == f"x {MASK} y"


def test_a_secret_inside_a_longer_one_masks_the_longer_whole() -> None:
    scrub = SecretScrubber(["secret-value", "my-secret-value-2"])
    assert scrub.values("a my-secret-value-2 b secret-value") == f"a {MASK} b {MASK}"


def test_adjacent_secrets_become_one_mask() -> None:
    scrub = SecretScrubber(["AAAAAAAA", "BBBBBBBB"])
    assert scrub.values("AAAAAAAABBBBBBBB!") == f"{MASK}!"


def test_short_and_empty_secrets_do_not_mask_ordinary_text() -> None:
    short = "x" * (MIN_SECRET_LENGTH - 1)
    scrub = SecretScrubber(["", "   ", "admin", short, None])
    assert not scrub
    text = f"admin logged in; {short} items"
    assert scrub.values(text) is text
    assert scrub.data({"user": "admin"}) == {"user": "admin"}


def test_surrounding_whitespace_of_a_secret_is_not_part_of_it() -> None:
    scrub = SecretScrubber(["  key-from-a-file-12\n"])
    assert scrub.values("sent key-from-a-file-12.") == f"sent {MASK}."


def test_regex_metacharacters_in_a_secret_are_literal() -> None:
    secret = r"a.b*c+d?e(f)[g]{2}|h\1$^"
    scrub = SecretScrubber([secret])
    assert scrub.values(f"pw={secret}!") == f"pw={MASK}!"
    # "." must not match any character, nor "|" split the pattern
    assert scrub.values("aXb*c+d?e(f)[g]{2}") == "aXb*c+d?e(f)[g]{2}"
    assert scrub.values("h\\1$^ alone") == "h\\1$^ alone"


def test_url_encoded_and_json_escaped_forms_are_masked_too() -> None:
    secret = 'p@ss/word"quoted'
    scrub = SecretScrubber([secret])
    assert secret not in scrub.values(f"raw {secret}")
    assert "p%40ss%2Fword%22quoted" not in scrub.values("url p%40ss%2Fword%22quoted@host")
    assert 'p@ss/word\\"quoted' not in scrub.values('json "p@ss/word\\"quoted"')


def test_text_without_a_secret_is_returned_as_is() -> None:
    scrub = SecretScrubber(["sk-test-SECRET123"])
    text = "model 'gpt' at http://127.0.0.1:8000/v1 answered HTTP 500: overloaded"
    assert scrub.values(text) is text
    assert scrub.text(text) == text


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (
            "postgresql+psycopg://rf:hunter2@db:5432/runs",
            "postgresql+psycopg://rf:***@db:5432/runs",
        ),
        ("s3://AKIDEXAMPLE:wJalr%2FK7@bucket/key", "s3://AKIDEXAMPLE:***@bucket/key"),
        ("Authorization: Bearer abc.def-123_456", "Authorization: Bearer ***"),
        ("Authorization: Basic dXNlcjpwYXNz", "Authorization: Basic ***"),
        ("sent bearer eyJhbGciOiJIUzI1NiJ9xx to", "sent bearer *** to"),
        ('{"password": "pw", "user": "rf"}', '{"password": "***", "user": "rf"}'),
        ("GET /x?api_key=XYZ123&page=2", "GET /x?api_key=***&page=2"),
        ("GET /x?X-Amz-Signature=abcdef0123&y=1", "GET /x?X-Amz-Signature=***&y=1"),
        ("client_secret=s3cr3t-value", "client_secret=***"),
        ("Incorrect API key provided: sk-proj-AbCdEf0123456789", "Incorrect API key provided: ***"),
        ("token rf_0123456789ab_" + "x" * 43 + " refused", "token *** refused"),
        ("key AKIAIOSFODNN7EXAMPLE is unknown", "key *** is unknown"),
        ("ghp_" + "a" * 36, "***"),
        ("jwt eyJhbGciOiJIUzI1.eyJzdWIiOiIxMjM0.sflKxwRJSMeKKF2QT4f", "jwt ***"),
    ],
)
def test_credential_shapes_are_masked_without_being_configured(text: str, shown: str) -> None:
    assert mask_credentials(text) == shown


@pytest.mark.parametrize(
    "text",
    [
        "http://127.0.0.1:8080/v1/chat/completions",
        "the JSON answer was cut at max_tokens=256; raise max_tokens",
        "ValueError: bad item",
        "risk-assessment-framework-v2 and task-scheduler-service",
        "cannot read s3://customer-data/in/a.jsonl — check the bucket",
        "the basic idea: a token limit",
    ],
)
def test_ordinary_messages_are_left_alone(text: str) -> None:
    assert mask_credentials(text) == text


def test_data_masks_strings_keys_and_nested_values_and_keeps_what_is_clean() -> None:
    scrub = SecretScrubber(["tok-ABCDEFGH"])
    clean = {"a": [1, "x", {"b": None}], "c": ("y",)}
    assert scrub.data(clean) is clean
    dirty = {"headers": {"Authorization": "Bearer tok-ABCDEFGH"}, "tok-ABCDEFGH": ["tok-ABCDEFGH"]}
    assert scrub.data(dirty) == {"headers": {"Authorization": f"Bearer {MASK}"}, MASK: [MASK]}
    assert scrub.data(("tok-ABCDEFGH", 1)) == (MASK, 1)
    # data keeps credential shapes (a stored answer may rightly show a URL with a port)
    assert scrub.data({"u": "Bearer something-else"}) == {"u": "Bearer something-else"}


def test_url_secrets_are_a_password_and_credential_named_query_values() -> None:
    assert url_secrets("postgresql://rf:hunter2@db/runs") == {"hunter2"}
    assert url_secrets("https://api.example/v1?api_key=K123&page=2&sig=S9") == {"K123", "S9"}
    assert url_secrets("https://api.example/v1?page=2") == set()
    assert url_secrets("runs.db") == set()
    assert url_secrets(None) == set()


def test_the_log_filter_masks_messages_arguments_and_tracebacks(
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret = "log-secret-0123456789"
    remember([secret])
    log = get_logger("relayflow.test_scrub")
    assert get_logger("relayflow.test_scrub").filters == log.filters  # added once
    with caplog.at_level(logging.DEBUG, logger="relayflow.test_scrub"):
        log.warning("provider said %s", f"key {secret} is wrong")
        try:
            raise ValueError(f"Incorrect API key provided: {secret}")
        except ValueError:
            log.exception("step failed")
    assert secret not in caplog.text
    assert "provider said key *** is wrong" in caplog.text
    assert "ValueError: Incorrect API key provided: ***" in caplog.text
