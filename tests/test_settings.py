"""settings.py: one model for the worker's and gateway's variables, the Temporal connection by envconfig."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.common import VersioningBehavior

from settings import Settings, SettingsError, load_settings, setting, temporal_connect_config
from worker import deployment_options


def test_defaults_are_those_of_a_local_worker() -> None:
    s = load_settings({})
    assert (s.database_url, s.db_pool_max, s.workflow_cache, s.workflow_sandbox) == (None, 20, 5000, "off")
    assert (s.task_queue, s.require_signatures, s.metrics_port, s.health_port) == ("spotcheck", True, None, None)
    assert (s.shutdown_grace, s.metrics_interval, s.versioned) == (30, 60, False)
    assert temporal_connect_config({}) == {"target_host": "localhost:7233", "namespace": "default"}


def test_values_are_read_and_empty_ones_are_unset(tmp_path: Path) -> None:
    keys = tmp_path / "keys.json"
    keys.write_text("{}")
    s = load_settings({"DATABASE_URL": "postgresql://u:pw@db/spotcheck", "SPOTCHECK_DB_POOL_MAX": " 50 ",
                       "SPOTCHECK_WORKFLOW_SANDBOX": "On", "SPOTCHECK_SIGNING_KEYS": str(keys),
                       "SPOTCHECK_REQUIRE_SIGNATURES": "no", "SPOTCHECK_METRICS_PORT": "9464",
                       "SPOTCHECK_CODEC_KEYS": "", "UNRELATED": "x"})
    assert s.database_url is not None and s.database_url.get_secret_value().endswith("@db/spotcheck")
    assert (s.db_pool_max, s.workflow_sandbox, s.signing_keys, s.require_signatures) == (50, "on", keys, False)
    assert (s.metrics_port, s.codec_keys) == (9464, None)
    assert "pw" not in repr(s)


@pytest.mark.parametrize(("name", "bad", "reason"), [
    ("SPOTCHECK_DB_POOL_MAX", "5000", "must be a whole number from 1 to 1000"),
    ("SPOTCHECK_WORKFLOW_CACHE", "1e6", "must be a whole number from 2 to 10000000"),
    ("SPOTCHECK_WORKFLOW_SANDBOX", "maybe", "must be on or off"),
    ("SPOTCHECK_REQUIRE_SIGNATURES", "perhaps", "must be 1 or 0"),
    ("SPOTCHECK_TRACING", "jaeger", "must be one of off, console, otlp"),
    ("SPOTCHECK_METRICS_PORT", "70000", "must be a port number"),
    ("SPOTCHECK_HEALTH_PORT", "http", "must be a port number"),
    ("SPOTCHECK_SHUTDOWN_GRACE", "-5", "must be a whole number from 0 to 3600"),
    ("SPOTCHECK_TASK_QUEUE", "a queue", "must be 1 to 255 printable"),
    ("SPOTCHECK_OUTBOX_CONFIG", "/nonexistent/outbox.toml", "names no readable file"),
    ("SPOTCHECK_SIGNING_KEYS", "/nonexistent/keys.json", "names no readable file"),
    ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317", "must be an http:// or https:// URL"),
    ("DATABASE_URL", "mysql://root:hunter2-secret@db/x", "must be a postgresql:// URL"),
])
def test_a_bad_value_is_refused_naming_the_variable_never_its_value(name: str, bad: str, reason: str) -> None:
    with pytest.raises(SettingsError) as err:
        load_settings({name: bad})
    assert str(err.value).startswith(f"{name}: {reason}")
    assert bad not in str(err.value)


def test_every_bad_variable_is_named_at_once() -> None:
    with pytest.raises(SettingsError) as err:
        load_settings({"SPOTCHECK_DB_POOL_MAX": "lots", "SPOTCHECK_WORKFLOW_CACHE": "1"})
    assert str(err.value).count(": must be") == 2


def test_one_setting_is_read_alone() -> None:
    assert setting("SPOTCHECK_WORKFLOW_CACHE", {"SPOTCHECK_WORKFLOW_CACHE": "7", "SPOTCHECK_DB_POOL_MAX": "x"}) == 7


def test_versioning_needs_both_the_deployment_name_and_the_build_id() -> None:
    with pytest.raises(SettingsError, match="^SPOTCHECK_BUILD_ID: set it together with SPOTCHECK_DEPLOYMENT_NAME"):
        load_settings({"SPOTCHECK_BUILD_ID": "2026-12-01"})
    assert deployment_options(load_settings({})) == {}
    config = deployment_options(load_settings({"SPOTCHECK_BUILD_ID": "2026-12-01",
                                               "SPOTCHECK_DEPLOYMENT_NAME": "spotcheck"}))["deployment_config"]
    assert config.use_worker_versioning and config.default_versioning_behavior is VersioningBehavior.PINNED
    assert config.version.to_canonical_string() == "spotcheck.2026-12-01"


def test_the_temporal_connection_comes_from_envconfig(tmp_path: Path) -> None:
    config = temporal_connect_config({"TEMPORAL_ADDRESS": "tmprl.example:7233", "TEMPORAL_NAMESPACE": "qa.acct",
                                      "TEMPORAL_API_KEY": "k-123"})
    assert config["target_host"] == "tmprl.example:7233" and config["namespace"] == "qa.acct"
    assert config["api_key"] == "k-123" and config["tls"] is True  # an API key implies TLS
    (tmp_path / "client.pem").write_bytes(b"-----BEGIN CERTIFICATE-----\n")
    (tmp_path / "client.key").write_bytes(b"-----BEGIN PRIVATE KEY-----\n")
    profiles = tmp_path / "temporal.toml"
    profiles.write_text(f'[profile.cloud]\naddress = "cloud.example:7233"\nnamespace = "prod.acct"\n'
                        f'[profile.cloud.tls]\nclient_cert_path = "{tmp_path}/client.pem"\n'
                        f'client_key_path = "{tmp_path}/client.key"\n')
    cloud = temporal_connect_config({"TEMPORAL_CONFIG_FILE": str(profiles), "TEMPORAL_PROFILE": "cloud"})
    assert (cloud["target_host"], cloud["namespace"]) == ("cloud.example:7233", "prod.acct")
    assert cloud["tls"].client_cert == b"-----BEGIN CERTIFICATE-----\n"  # mTLS: read at start, not at first call
    with pytest.raises(SettingsError, match="No such file"):  # a missing certificate stops the process at start
        temporal_connect_config({"TEMPORAL_ADDRESS": "x:7233", "TEMPORAL_TLS_CLIENT_CERT_PATH": "/nonexistent.pem",
                                 "TEMPORAL_TLS_CLIENT_KEY_PATH": "/nonexistent.key"})


def test_an_unusable_temporal_configuration_stops_with_its_source_named(tmp_path: Path) -> None:
    broken = tmp_path / "temporal.toml"
    broken.write_text("[profile.default\naddress = ")
    with pytest.raises(SettingsError, match="^Temporal client configuration"):
        temporal_connect_config({"TEMPORAL_CONFIG_FILE": str(broken), "TEMPORAL_API_KEY": "very-secret-key"})


def test_the_model_lists_its_variables() -> None:
    assert {"DATABASE_URL", "SPOTCHECK_WORKFLOW_SANDBOX", "SPOTCHECK_BUILD_ID"} <= Settings.variables()
