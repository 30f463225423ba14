"""The outbox's pure parts: the configuration model (errors name the field, never a secret), the webhook
signature a receiver checks, the message key, the back-off and a message's state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from activities.outbox import config_from_env, read_config
from domain.outbox import (
    MessageState,
    OutboxConfig,
    OutboxConfigError,
    SmtpChannel,
    message_key,
    message_state,
    parse_outbox_config,
    retry_delay,
    webhook_signature,
    webhook_signature_problem,
)

SECRET = "s3cr3t-value-that-must-never-print"
HOOK = {"kind": "webhook", "url": "https://lims.example.org/spotcheck", "secret": SECRET}


def problem(data: Any) -> str:
    with pytest.raises(OutboxConfigError) as err:
        parse_outbox_config(data, "outbox.toml")
    assert SECRET not in str(err.value)
    return str(err.value)


def test_a_good_configuration_keeps_its_secret_out_of_every_printout() -> None:
    config = parse_outbox_config({"channels": {"lims": HOOK, "reminder": {
        "kind": "smtp", "host": "smtp.example.org", "sender": "spotcheck@example.org", "username": "u",
        "password": SECRET, "recipients": {"lab": ["lab@example.org"]}}}}, "outbox.toml")
    assert set(config.channels) == {"lims", "reminder"}
    assert SECRET not in repr(config) and SECRET not in str(config.model_dump())
    assert SECRET not in config.model_dump_json()


def test_errors_name_the_field_never_the_value() -> None:
    # (the location names the channel's kind too: pydantic's discriminated union)
    assert problem({"channels": {"lims": {**HOOK, "secret": "short"}}}) == (
        "outbox.toml: channels.lims.webhook.secret: must be at least 16 bytes")
    assert "channels.lims.webhook.url" in problem({"channels": {"lims": {**HOOK, "url": f"ftp://{SECRET}"}}})
    assert "channels.lims: Input tag" in problem({"channels": {"lims": {**HOOK, "kind": "pigeon"}}})
    assert "channels.lims.webhook.extra" in problem({"channels": {"lims": {**HOOK, "extra": SECRET}}})
    assert "channels" in problem({"channels": {"Not A Name": HOOK}})
    assert "lease_seconds: must be at least twice channel lims's time bound" in problem(
        {"channels": {"lims": {**HOOK, "read_timeout": 100}}, "lease_seconds": 60, "run_seconds": 60})
    assert "password: username and password go together" in problem({"channels": {"m": {
        "kind": "smtp", "host": "h", "sender": "a@b.c", "password": SECRET}}})
    assert "max_attempts" in problem({"max_attempts": 0})


def test_the_file_and_the_variable(tmp_path: Path) -> None:
    assert config_from_env({}) is None
    bad = tmp_path / "bad.toml"
    bad.write_text(f'[channels.lims]\nsecret = "{SECRET}\n', encoding="utf-8")  # unterminated string
    with pytest.raises(OutboxConfigError, match="not valid TOML") as err:
        config_from_env({"SPOTCHECK_OUTBOX_CONFIG": str(bad)})
    assert SECRET not in str(err.value)
    with pytest.raises(OutboxConfigError, match="cannot read"):
        config_from_env({"SPOTCHECK_OUTBOX_CONFIG": str(tmp_path / "missing.toml")})
    good = tmp_path / "outbox.toml"
    good.write_text(f'max_attempts = 4\n[channels.lims]\nkind = "webhook"\nurl = "http://127.0.0.1:9/h"\n'
                    f'secret = "{SECRET}"\n', encoding="utf-8")
    assert read_config(good).max_attempts == 4
    assert config_from_env({"SPOTCHECK_OUTBOX_CONFIG": str(good)}) == read_config(good)


def test_a_receiver_accepts_the_signature_and_refuses_any_change() -> None:
    secret, body, now = b"k" * 32, '{"message_id": "m", "subject": "催告"}'.encode(), datetime.now(UTC)
    header = webhook_signature(secret, int(now.timestamp()), body)
    assert header.startswith(f"t={int(now.timestamp())},v1=") and len(header.rpartition("=")[2]) == 64
    assert webhook_signature_problem(secret, header, body, now) is None
    assert webhook_signature_problem(secret, header, body + b" ", now) == "signature: does not match"
    assert webhook_signature_problem(b"x" * 32, header, body, now) == "signature: does not match"
    assert webhook_signature_problem(secret, header, body, now + timedelta(minutes=6)) == (
        "signature: outside the accepted time window")
    # the timestamp is signed too: moving it breaks the signature
    moved = header.replace(f"t={int(now.timestamp())}", f"t={int(now.timestamp()) + 1}")
    assert webhook_signature_problem(secret, moved, body, now) == "signature: does not match"
    assert webhook_signature_problem(secret, None, body, now) == "signature: missing"
    assert webhook_signature_problem(secret, "v1=abc", body, now) == "signature: malformed"


def test_the_message_key_is_stable_and_fits_a_header() -> None:
    key = message_key("sample-ZJ-1", "remind-lab_report-1")
    assert key == message_key("sample-ZJ-1", "remind-lab_report-1")
    assert key != message_key("sample-ZJ-1", "remind-lab_report-2")
    assert key != message_key("sample-ZJ-1\nremind", "lab_report-1")  # no ambiguity across the parts
    assert key.isascii() and len(key) == len("spotcheck-") + 40


def test_back_off_doubles_up_to_its_cap() -> None:
    assert [retry_delay(n, 10, 60) for n in range(1, 6)] == [10, 20, 40, 60, 60]
    assert retry_delay(10_000, 10, 3600) == 3600


def test_a_message_state() -> None:
    now = datetime.now(UTC)
    assert message_state({"channel": "a", "sent_at": now}, set()) == MessageState.SENT
    assert message_state({"channel": "a", "failed_at": now}, {"a"}) == MessageState.FAILED
    assert message_state({"channel": "a"}, {"b"}) == MessageState.NO_ADAPTER
    assert message_state({"channel": "a"}, {"a"}) == MessageState.PENDING
    assert message_state({"channel": "a"}, None) == MessageState.PENDING


def test_smtp_recipients_by_role_or_address() -> None:
    channel = SmtpChannel(kind="smtp", host="h", sender="s@x.org", recipients={"lab": ["l@x.org", "q@x.org"]})
    assert channel.addresses("lab, direct@x.org,lab") == (["l@x.org", "q@x.org", "direct@x.org"], [])
    assert channel.addresses("lab,enterprise") == (["l@x.org", "q@x.org"], ["enterprise"])


def test_defaults_fit_together() -> None:
    config = OutboxConfig(channels={"lims": HOOK})  # type: ignore[dict-item]
    assert config.plan().run_seconds == 300 and config.plan().heartbeat_seconds == 30
