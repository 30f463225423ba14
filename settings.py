"""The settings of a worker or gateway process, from the environment, validated once at start.

Two sources and no other:

- the Temporal connection (address, namespace, TLS client certificate and key, API key, profiles) through the
  SDK's `temporalio.envconfig`: `TEMPORAL_ADDRESS`, `TEMPORAL_NAMESPACE`, `TEMPORAL_API_KEY`,
  `TEMPORAL_TLS_CLIENT_CERT_PATH`, `TEMPORAL_TLS_CLIENT_KEY_PATH`, `TEMPORAL_TLS_SERVER_CA_CERT_PATH`,
  `TEMPORAL_PROFILE`, `TEMPORAL_CONFIG_FILE` … (the SDK's names, the same as the `temporal` CLI's);
- everything else in `Settings`, one field per variable, its name the field's alias.

A bad value stops the process at start with the variable named, never its value (`SettingsError`). The
variables a deployment sets (docker-compose.yml, .env.example) are checked against `Settings.variables()`
by tests/test_deploy.py.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, SecretStr, ValidationError
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict

DEFAULT_ADDRESS = "localhost:7233"
DEFAULT_NAMESPACE = "default"
TEMPORAL_VARIABLES = (  # what temporalio.envconfig reads (sdk-core's client config), for the deployment checks
    "TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE", "TEMPORAL_API_KEY", "TEMPORAL_PROFILE", "TEMPORAL_CONFIG_FILE",
    "TEMPORAL_TLS", "TEMPORAL_TLS_CLIENT_CERT_PATH", "TEMPORAL_TLS_CLIENT_CERT_DATA",
    "TEMPORAL_TLS_CLIENT_KEY_PATH", "TEMPORAL_TLS_CLIENT_KEY_DATA", "TEMPORAL_TLS_SERVER_CA_CERT_PATH",
    "TEMPORAL_TLS_SERVER_CA_CERT_DATA", "TEMPORAL_TLS_SERVER_NAME", "TEMPORAL_TLS_DISABLE_HOST_VERIFICATION",
    "TEMPORAL_GRPC_META_",
)  # fmt: skip


class SettingsError(ValueError):
    """One line per bad variable, `NAME: what is wrong`; never the value."""


def _whole(low: int, high: int) -> BeforeValidator:
    """An ASCII whole number from `low` to `high` (the rule of domain.bounds.whole_number_setting)."""

    def check(raw: Any) -> Any:
        text = str(raw).strip()
        if not (text.isascii() and text.isdigit() and len(text) <= 12) or not low <= int(text) <= high:
            raise PydanticCustomError("whole_number", f"must be a whole number from {low} to {high}")
        return int(text)

    return BeforeValidator(check)


def _one_of(*allowed: str) -> BeforeValidator:
    def check(raw: Any) -> Any:
        text = str(raw).strip().lower()
        if text not in allowed:
            raise PydanticCustomError("one_of", f"must be {' or '.join(allowed)}"
                                      if len(allowed) == 2 else f"must be one of {', '.join(allowed)}")
        return text

    return BeforeValidator(check)


def _flag(raw: Any) -> Any:
    text = str(raw).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off"}:
        return False
    raise PydanticCustomError("flag", "must be 1 or 0 (true/false, yes/no, on/off)")


def _port_or_off(raw: Any) -> Any:
    text = str(raw).strip()
    if not (text.isascii() and text.isdigit() and len(text) <= 5) or not 1 <= int(text) <= 65535:
        raise PydanticCustomError("port", "must be a port number from 1 to 65535")
    return int(text)


def _existing_file(path: Path) -> Path:
    if not path.is_file():
        raise PydanticCustomError("file", "names no readable file")
    return path


def _dsn(value: SecretStr) -> SecretStr:
    if not value.get_secret_value().startswith(("postgresql://", "postgres://")):
        raise PydanticCustomError("dsn", "must be a postgresql:// URL")
    return value


def _name(raw: Any) -> Any:
    text = str(raw).strip()
    if not text or len(text) > 255 or not text.isprintable() or any(c in text for c in " /\\."):
        raise PydanticCustomError("name", "must be 1 to 255 printable characters without spaces, dots or slashes")
    return text


Flag = Annotated[bool, BeforeValidator(_flag)]
Port = Annotated[int, BeforeValidator(_port_or_off)]
KeyFile = Annotated[Path, AfterValidator(_existing_file)]
Name = Annotated[str, BeforeValidator(_name)]


class Settings(BaseSettings):
    """Every Spotcheck variable of a worker or gateway process. Files holding secrets are named by path
    (mode 0600, or Docker/Kubernetes secrets mounted as files); only DATABASE_URL carries one inline."""

    model_config = SettingsConfigDict(case_sensitive=True, env_ignore_empty=True, extra="ignore", frozen=True,
                                      validate_default=False)

    database_url: Annotated[SecretStr, AfterValidator(_dsn)] | None = Field(None, alias="DATABASE_URL", description="PostgreSQL DSN of the records")
    db_pool_max: Annotated[int, _whole(1, 1000)] = Field(20, alias="SPOTCHECK_DB_POOL_MAX")
    task_queue: Name = Field("spotcheck", alias="SPOTCHECK_TASK_QUEUE")
    workflow_cache: Annotated[int, _whole(2, 10_000_000)] = Field(5000, alias="SPOTCHECK_WORKFLOW_CACHE")
    workflow_sandbox: Annotated[Literal["on", "off"], _one_of("on", "off")] = Field(
        "off", alias="SPOTCHECK_WORKFLOW_SANDBOX")
    outbox_config: KeyFile | None = Field(None, alias="SPOTCHECK_OUTBOX_CONFIG")
    signing_keys: KeyFile | None = Field(None, alias="SPOTCHECK_SIGNING_KEYS")
    require_signatures: Flag = Field(True, alias="SPOTCHECK_REQUIRE_SIGNATURES")
    codec_keys: KeyFile | None = Field(None, alias="SPOTCHECK_CODEC_KEYS")
    gateway_keys: KeyFile | None = Field(None, alias="SPOTCHECK_GATEWAY_KEYS")
    gateway_max_body: Annotated[int, _whole(1024, 16 * 1024 * 1024)] = Field(
        256 * 1024, alias="SPOTCHECK_GATEWAY_MAX_BODY")
    demo_mode: Flag = Field(False, alias="SPOTCHECK_DEMO_MODE")
    calendar_dir: Path | None = Field(None, alias="SPOTCHECK_CALENDAR_DIR")
    rules_dir: Path | None = Field(None, alias="SPOTCHECK_RULES_DIR")
    tracing: Annotated[Literal["off", "console", "otlp"], _one_of("off", "console", "otlp")] = Field(
        "off", alias="SPOTCHECK_TRACING")
    otlp_endpoint: str | None = Field(None, alias="OTEL_EXPORTER_OTLP_ENDPOINT", pattern=r"^https?://[^\s]+$")
    otlp_protocol: Annotated[str | None, _one_of("grpc", "http/protobuf")] = Field(
        None, alias="OTEL_EXPORTER_OTLP_PROTOCOL")
    # Operations (monitoring.py): the SDK's and Spotcheck's metrics for Prometheus, health and readiness.
    metrics_port: Port | None = Field(None, alias="SPOTCHECK_METRICS_PORT")
    health_port: Port | None = Field(None, alias="SPOTCHECK_HEALTH_PORT")
    metrics_interval: Annotated[int, _whole(5, 3600)] = Field(60, alias="SPOTCHECK_METRICS_INTERVAL")
    # In-flight activities get this long to finish on SIGTERM (keep compose's stop_grace_period above it).
    shutdown_grace: Annotated[int, _whole(0, 3600)] = Field(30, alias="SPOTCHECK_SHUTDOWN_GRACE")
    # Worker Deployment versioning (docs/operations.md): both set, or neither.
    deployment_name: Name | None = Field(None, alias="SPOTCHECK_DEPLOYMENT_NAME")
    build_id: Name | None = Field(None, alias="SPOTCHECK_BUILD_ID")

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)  # the environment comes in through load_settings, as a mapping

    @classmethod
    def variables(cls) -> frozenset[str]:
        """Every variable the model reads."""
        return frozenset(str(f.alias) for f in cls.model_fields.values())

    @property
    def versioned(self) -> bool:
        return self.build_id is not None


class _Environ(EnvSettingsSource):
    """pydantic-settings' environment source over a given mapping (os.environ, or a test's dict)."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {k: v for k, v in self._environ.items() if v.strip()}


def load_settings(environ: Mapping[str, str] = os.environ) -> Settings:
    """The settings from `environ`; a SettingsError with one `VARIABLE: reason` line per bad variable."""
    try:
        settings = Settings(**_Environ(Settings, environ)())
    except ValidationError as err:
        names = {f.alias: f.alias for f in Settings.model_fields.values()} | {
            name: f.alias for name, f in Settings.model_fields.items()}
        lines = sorted({f"{names.get(str(e['loc'][0]), e['loc'][0]) if e['loc'] else 'settings'}: {_reason(e)}"
                        for e in err.errors(include_input=False)})
        raise SettingsError("; ".join(lines)) from None
    if (settings.deployment_name is None) != (settings.build_id is None):
        raise SettingsError("SPOTCHECK_BUILD_ID: set it together with SPOTCHECK_DEPLOYMENT_NAME, or neither")
    return settings


def setting(name: str, environ: Mapping[str, str] = os.environ) -> Any:
    """The one variable `name`, validated alone (for code that needs only it, e.g. the CLI's pool size)."""
    field = next(field for field, info in Settings.model_fields.items() if info.alias == name)
    return getattr(load_settings({name: environ[name]} if name in environ else {}), field)


def _reason(error: Any) -> str:
    if error["type"] == "string_pattern_mismatch":
        return "must be an http:// or https:// URL"
    return str(error["msg"])


def temporal_connect_config(environ: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """`Client.connect` arguments from temporalio.envconfig (its profile file and TEMPORAL_* variables),
    defaulting to the local server's address and the default namespace. A SettingsError when the profile
    file or a TEMPORAL_* value cannot be used (the SDK's reason; it names the file or field, not a key)."""
    from temporalio.envconfig import ClientConfigProfile

    try:
        profile = ClientConfigProfile.load(override_env_vars=dict(environ))
        config: dict[str, Any] = dict(profile.to_client_connect_config())
    except Exception as err:  # the SDK's bridge raises plain RuntimeErrors
        raise SettingsError(f"Temporal client configuration (TEMPORAL_CONFIG_FILE, TEMPORAL_PROFILE, TEMPORAL_*): "
                            f"{type(err).__name__}: {_without_secrets(str(err), environ)}") from None
    config.setdefault("target_host", DEFAULT_ADDRESS)
    config.setdefault("namespace", DEFAULT_NAMESPACE)
    return config


def _without_secrets(message: str, environ: Mapping[str, str]) -> str:
    for name in ("TEMPORAL_API_KEY", "TEMPORAL_TLS_CLIENT_KEY_DATA"):
        if environ.get(name):
            message = message.replace(environ[name], "***")
    return message[:300]
