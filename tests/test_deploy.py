"""The deployment files (docker-compose.yml, Dockerfile, deploy/, .env.example), checked offline: nothing is
pulled or built in a container. `docker compose` is not in Debian 12's packages (only the old Python
docker-compose 1.29), so the file is validated against the Compose Specification's JSON schema, vendored in
deploy/compose-spec.json (its source: deploy/README.md), plus the structure Spotcheck relies on."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from activities.holiday_files import CALENDAR_DIR_ENV
from activities.policy import DEMO_ENV
from activities.rule_packs import RULE_OVERRIDES_ENV, RULES_DIR_ENV
from domain import visibility
from settings import TEMPORAL_VARIABLES, Settings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
SERVICES: dict[str, Any] = COMPOSE["services"]
SPOTCHECK_SERVICES = ("worker", "gateway")
# What Spotcheck's processes read besides settings.py: the activities' own variables.
CODE_VARIABLES = Settings.variables() | set(TEMPORAL_VARIABLES) | {
    CALENDAR_DIR_ENV, DEMO_ENV, RULES_DIR_ENV, RULE_OVERRIDES_ENV}
INTERPOLATION = re.compile(r"\$\{([A-Z0-9_]+)(?::?[-?][^}]*)?\}")
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _env(service: str) -> dict[str, str]:
    env = SERVICES[service].get("environment", {})
    return dict(env) if isinstance(env, dict) else dict(item.split("=", 1) for item in env)


def test_the_compose_file_follows_the_compose_specification() -> None:
    schema = json.loads((ROOT / "deploy" / "compose-spec.json").read_text(encoding="utf-8"))
    jsonschema.Draft7Validator.check_schema(schema)
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(COMPOSE), key=str)
    assert not errors, "\n".join(f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors)


def test_every_service_it_waits_for_exists_and_can_say_it_is_ready() -> None:
    for name, service in SERVICES.items():
        for dependency, how in service.get("depends_on", {}).items():
            assert dependency in SERVICES, f"{name} depends on unknown {dependency}"
            condition = how["condition"]
            if condition == "service_healthy":
                assert "healthcheck" in SERVICES[dependency], f"{name} waits for {dependency}'s health check"
            if condition == "service_completed_successfully":
                assert SERVICES[dependency].get("restart") == "no", f"{dependency} is a one-shot job"
    order = [("temporal-schema", "postgresql"), ("temporal", "temporal-schema"), ("temporal-setup", "temporal"),
             ("worker", "temporal-setup"), ("worker", "postgresql"), ("gateway", "temporal-setup")]
    for service, first in order:
        assert first in SERVICES[service]["depends_on"], f"{service} starts after {first}"


def test_temporal_runs_on_postgresql_with_its_schema_from_the_admin_tools() -> None:
    assert _env("temporal")["DB"] == "postgres12" and _env("temporal")["POSTGRES_SEEDS"] == "postgresql"
    job = SERVICES["temporal-schema"]
    assert job["image"].startswith("temporalio/admin-tools:")
    script = job["command"][0]
    for database, folder in (("temporal", "temporal"), ("temporal_visibility", "visibility")):
        assert f"--db {database} setup-schema -v 0.0" in script
        assert f"--db {database} update-schema -d /etc/temporal/schema/postgresql/v12/{folder}/versioned" in script
    init = (ROOT / "deploy" / "postgres" / "init.sh").read_text(encoding="utf-8")
    assert {"temporal", "temporal_visibility", "spotcheck"} <= set(re.findall(r"CREATE DATABASE (\w+)", init))
    assert _env("worker")["DATABASE_URL"].endswith("@postgresql:5432/spotcheck")


def test_the_setup_job_registers_exactly_spotchecks_search_attributes() -> None:
    script = SERVICES["temporal-setup"]["command"][0]
    registered = dict(re.findall(r"\b([A-Z]\w+)=(Keyword|KeywordList|Datetime|Bool|Text|Int|Double)\b", script))
    wanted = {key.name: key.indexed_value_type.name.title().replace("_", "") for key in visibility.ALL}
    assert registered == wanted
    assert "namespace create" in script


def test_workers_scale_out_and_stop_gracefully() -> None:
    worker = SERVICES["worker"]
    assert "ports" not in worker and "container_name" not in worker  # `--scale worker=N`
    assert worker["command"] == ["spotcheck", "worker"] and SERVICES["gateway"]["command"][:2] == ["spotcheck", "gateway"]
    env = _env("worker")
    grace = int(env["SPOTCHECK_SHUTDOWN_GRACE"])
    assert int(worker["stop_grace_period"].removesuffix("s")) > grace  # SIGKILL only after the grace
    assert f"127.0.0.1:{env['SPOTCHECK_HEALTH_PORT']}/readyz" in " ".join(worker["healthcheck"]["test"])
    assert env["SPOTCHECK_DEPLOYMENT_NAME"] and env["SPOTCHECK_BUILD_ID"].startswith("${SPOTCHECK_BUILD_ID:?")
    promote = SERVICES["worker-promote"]["command"][0]
    assert f"--deployment-name {env['SPOTCHECK_DEPLOYMENT_NAME']}" in promote


def test_prometheus_scrapes_every_worker_where_it_serves_metrics() -> None:
    config = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text(encoding="utf-8"))
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    sd = jobs["spotcheck-worker"]["dns_sd_configs"][0]
    assert sd["names"] == ["worker"] and sd["port"] == int(_env("worker")["SPOTCHECK_METRICS_PORT"])
    collector = yaml.safe_load((ROOT / "deploy" / "otel-collector.yaml").read_text(encoding="utf-8"))
    assert collector["service"]["pipelines"]["traces"]["receivers"] == ["otlp"]
    assert _env("worker")["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector:4317"


def test_every_variable_a_spotcheck_service_sets_is_one_the_code_reads() -> None:
    for service in SPOTCHECK_SERVICES:
        unknown = set(_env(service)) - CODE_VARIABLES
        assert not unknown, f"{service} sets variables no code reads: {sorted(unknown)}"


def test_no_secret_is_written_in_the_compose_file() -> None:
    secretish = re.compile(r"PASSWORD|PWD|SECRET|TOKEN|API_KEY|DATABASE_URL")
    for name in SERVICES:
        for variable, value in _env(name).items():
            if secretish.search(variable):
                assert re.search(r"\$\{[A-Z_]+:\?", str(value)), f"{name}.{variable} must come from .env, required"
    for name, secret in COMPOSE["secrets"].items():
        assert secret["file"].startswith("${") and secret["file"].endswith("}"), name
    for variable in ("SPOTCHECK_SIGNING_KEYS", "SPOTCHECK_CODEC_KEYS"):
        assert _env("worker")[variable].startswith("/run/secrets/")


def test_every_variable_the_compose_file_interpolates_is_in_env_example() -> None:
    text = (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
    example = dict(line.split("=", 1) for line in (ROOT / ".env.example").read_text(encoding="utf-8").splitlines()
                   if line and not line.startswith("#"))
    assert set(INTERPOLATION.findall(text)) == set(example)
    for variable, value in example.items():
        if re.search(r"PASSWORD|SECRET", variable):
            assert value == "", f".env.example gives {variable} no value"


def test_every_file_the_compose_file_mounts_is_in_the_repository() -> None:
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's wheel, built as the Dockerfile's builder stage builds it (offline: no build isolation)."""
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "--wheel-dir", str(out), str(ROOT)], check=True, capture_output=True, timeout=300)
    (built,) = out.glob("*.whl")
    return built


def test_the_dockerfile_installs_the_wheel_the_tests_build(wheel: Path) -> None:
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert "RUN pip wheel --no-deps --wheel-dir /wheels ." in dockerfile
    project = PYPROJECT["project"]
    assert wheel.name == f"{project['name']}-{project['version']}-py3-none-any.whl"
    assert set(re.findall(r"spotcheck-[\w.]+-py3-none-any\.whl", dockerfile)) == {wheel.name}
    copied = {part for line in dockerfile.splitlines() if line.startswith("COPY ") and "--from" not in line
              for part in line.split()[1:-1]}
    setuptools = PYPROJECT["tool"]["setuptools"]
    needed = {f"{m}.py" for m in setuptools["py-modules"]} | {p.split(".")[0] for p in setuptools["packages"]}
    assert needed | {"pyproject.toml", "README.md"} <= copied, "the builder stage copies every module and folder"
    assert re.search(r"^USER (?!0\b|root\b)\S+", dockerfile, re.M), "the image runs as a non-root user"


def test_the_wheel_carries_what_the_code_finds_beside_it(wheel: Path) -> None:
    """Migrations, rule packs, notice templates, holiday years and the planning data: an installed wheel runs as
    the work tree."""
    names = set(zipfile.ZipFile(wheel).namelist())
    for folder, pattern in (("migrations", "*.sql"), ("rules", "*.toml"), ("templates", "*.j2"), ("calendar", "*.toml"),
                            ("planning", "*.csv"), ("planning", "*.toml")):
        files = {f"{folder}/{p.name}" for p in (ROOT / folder).glob(pattern)}
        assert files and files <= names, f"{folder} missing from the wheel"
    assert {"starter/gateway/app.py", "settings.py", "monitoring.py", "worker.py"} <= names
