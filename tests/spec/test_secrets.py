"""Which configured values of a workflow are secrets (spec/secrets.py)."""

from __future__ import annotations

from pathlib import Path

from relayflow.spec.loader import load_spec_text
from relayflow.spec.secrets import credential_values, workflow_secrets

WORKFLOW = """
name: secrets
models:
  gpt:
    provider: openai
    model: gpt-4o-mini
    api_key_env: RF_KEY
    base_url: https://proxy-user:proxy-pass-123@llm.example/v1
  local:
    provider: llama_cpp
workflow:
  - name: Read
    type: retrieval
    source: s3://bucket/in/
    storage_options:
      key: AKIAIOSFODNN7EXAMPLE
      secret: wJalrXUtnFEMI-K7MDENG
      anon: false
      client_kwargs: {endpoint_url: "http://minio:9000", aws_session_token: session-tok-1}
  - name: Call
    type: service
    url: https://api.example/score?api_key=url-key-456&page=1
    headers:
      Authorization: "Bearer ${RF_TOKEN}"
      Accept: application/json
      X-Trace: "${RF_TRACE}"
    headers_env:
      X-Api-Key: RF_HEADER_KEY
  - name: Ask
    type: inference
    model: gpt
    prompt: "{{ text }}"
"""

ENV = {
    "RF_KEY": "sk-test-SECRET123",
    "RF_TOKEN": "service-token-789",
    "RF_TRACE": "trace-value-1",
    "RF_HEADER_KEY": "header-key-000",
}


def test_every_configured_secret_is_found(tmp_path: Path) -> None:
    workflow = load_spec_text(WORKFLOW, tmp_path / "wf.yaml")
    found = workflow_secrets(workflow, ENV)
    for secret in (
        "sk-test-SECRET123",  # api_key_env
        "proxy-pass-123",  # a password in base_url
        "AKIAIOSFODNN7EXAMPLE",  # storage_options
        "wJalrXUtnFEMI-K7MDENG",
        "session-tok-1",
        "url-key-456",  # a key in the service URL
        "service-token-789",  # ${NAME} in a header
        "Bearer service-token-789",
        "trace-value-1",  # any value taken from the environment
        "header-key-000",  # headers_env
    ):
        assert secret in found, secret
    # settings that are not credentials stay visible
    for plain in ("application/json", "http://minio:9000", "gpt-4o-mini", "s3://bucket/in/"):
        assert plain not in found


def test_an_unset_variable_adds_no_value(tmp_path: Path) -> None:
    workflow = load_spec_text(WORKFLOW, tmp_path / "wf.yaml")
    assert {v for v in workflow_secrets(workflow, {}) if v} >= {"proxy-pass-123"}
    assert "sk-test-SECRET123" not in workflow_secrets(workflow, {})


def test_credential_values_walks_nested_settings() -> None:
    options = {
        "headers": {"Authorization": "Bearer tok-abcdefgh", "Accept": "text/plain"},
        "client_kwargs": {"auth": ["user", "pass-12345678"]},
        "password": "pw-12345678",
        "endpoint_url": "http://u:inline-pw@host",
        "timeout": 5,
    }
    assert credential_values(options) == {
        "Bearer tok-abcdefgh",
        "tok-abcdefgh",
        "user",
        "pass-12345678",
        "pw-12345678",
        "inline-pw",
    }
