"""The production path (Dockerfile, docker-compose.yml) agrees with the code it ships.

No container engine runs here, so these read the files and check them against
the settings, modules and search attributes of this repository.
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import AliasChoices
from pydantic_settings import BaseSettings

from models.names import SEARCH_ATTRIBUTES
from settings import Settings
from standins.config import StandinConfig

ROOT = Path(__file__).resolve().parent.parent
APP_SERVICES = ("migrate", "api", "worker", "standins", "backup")
PRODUCT_SERVICES = {"postgresql", "temporal", "temporal-ui", "migrate", "api", "worker", "standins", "backup"}

# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?message}, ${NAME?message}
INTERPOLATION = re.compile(r"\$\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(document, dict)
    return document


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return dict(compose["services"])


def interpolate(value: str) -> str:
    """What compose would pass, with every required variable given a sample value."""

    def replace(match: re.Match[str]) -> str:
        if match["op"] in (":-", "-"):
            return match["arg"]
        return f"sample-{match['name'].lower()}"

    return INTERPOLATION.sub(replace, value)


def environment(service: dict[str, Any]) -> dict[str, str]:
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) for item in raw)
    return {name: interpolate(str(value)) for name, value in raw.items()}


def accepted_names(config: type[BaseSettings]) -> set[str]:
    prefix = str(config.model_config.get("env_prefix", ""))
    names: set[str] = set()
    for field_name, field in config.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, str):
            names.add(alias.upper())
        elif isinstance(alias, AliasChoices):
            names |= {choice.upper() for choice in alias.choices if isinstance(choice, str)}
        else:
            names.add(f"{prefix}{field_name}".upper())
    return names


def command_of(service: dict[str, Any]) -> list[str]:
    command = service["command"]
    return shlex.split(command) if isinstance(command, str) else list(command)


def runs_python_code_of_this_repo(command: list[str]) -> bool:
    if command[0] != "python":
        return False
    if command[1] == "-m":
        module = ROOT.joinpath(*command[2].split("."))
        return module.with_suffix(".py").is_file() or (module / "__main__.py").is_file()
    return (ROOT / command[1]).is_file()


def test_compose_file_has_every_service_the_product_needs(services: dict[str, dict[str, Any]]) -> None:
    assert services.keys() >= PRODUCT_SERVICES
    assert services["postgresql"]["image"].startswith("postgres:15")
    assert services["temporal"]["image"].startswith("temporalio/auto-setup:")
    assert services["temporal-ui"]["image"].startswith("temporalio/ui:")


def test_postgresql_keeps_its_data_in_a_volume_and_reports_health(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    postgresql = services["postgresql"]
    volume = postgresql["volumes"][0].split(":")[0]
    assert volume in compose["volumes"]
    assert "pg_isready" in postgresql["healthcheck"]["test"]


def test_temporal_runs_on_the_compose_postgresql(services: dict[str, dict[str, Any]]) -> None:
    temporal = environment(services["temporal"])
    assert temporal["POSTGRES_SEEDS"] == "postgresql"
    assert temporal["DB"].startswith("postgres")
    assert "postgresql" in services["temporal"]["depends_on"]


def test_app_services_set_only_real_setting_names(services: dict[str, dict[str, Any]]) -> None:
    known = accepted_names(Settings) | accepted_names(StandinConfig)
    for name in APP_SERVICES:
        unknown = set(environment(services[name])) - known
        assert not unknown, f"{name} sets variables no settings class reads: {sorted(unknown)}"


@pytest.mark.parametrize("name", ["api", "worker", "migrate", "backup"])
def test_api_and_worker_settings_validate_in_production(
    name: str, services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in list(os.environ):
        if variable.startswith("OMS_") or variable == "DATABASE_URL":
            monkeypatch.delenv(variable)
    for variable, value in environment(services[name]).items():
        monkeypatch.setenv(variable, value)

    settings = Settings(_env_file=None)  # type: ignore[call-arg]

    assert settings.environment == "production"
    assert settings.database_url.startswith("postgresql://")
    assert "@postgresql:5432/" in settings.database_url
    assert settings.temporal_address == "temporal:7233"
    assert settings.carrier_url.startswith("http://standins:8100/")


def test_production_secrets_must_be_supplied_not_defaulted(services: dict[str, dict[str, Any]]) -> None:
    for name in ("api", "worker"):
        raw = services[name]["environment"]
        assert re.fullmatch(r"\$\{OMS_EXTERNAL_API_KEY:\?[^}]*\}", raw["OMS_EXTERNAL_API_KEY"])
    assert (
        services["standins"]["environment"]["STANDINS_API_KEY"]
        == services["api"]["environment"]["OMS_EXTERNAL_API_KEY"]
    )


def test_the_encryption_keys_must_be_supplied_and_the_ui_decodes_through_the_api(
    services: dict[str, dict[str, Any]],
) -> None:
    for name in ("api", "worker"):
        raw = services[name]["environment"]
        assert re.fullmatch(r"\$\{OMS_ENCRYPTION_KEYS:\?[^}]*\}", raw["OMS_ENCRYPTION_KEYS"])
        assert "OMS_ENCRYPTION_KEY_FILE" not in raw
    codec = environment(services["temporal-ui"])["TEMPORAL_CODEC_ENDPOINT"]
    published_api = services["api"]["ports"][0].split(":")[0]
    # The browser calls it, so it names the API as published on the host, from an origin the API allows.
    assert codec == f"http://localhost:{published_api}/codec"
    assert "http://localhost:8233" in Settings.model_fields["codec_cors_origins"].default


def test_the_stand_ins_sign_and_check_webhooks_with_the_services_secrets(services: dict[str, dict[str, Any]]) -> None:
    standins, api = services["standins"]["environment"], services["api"]["environment"]
    for name in ("OMS_CARRIER_WEBHOOK_SECRET", "OMS_PURCHASING_WEBHOOK_SECRET"):
        assert re.fullmatch(rf"\$\{{{name}:\?[^}}]*\}}", api[name])
        assert services["worker"]["environment"][name] == api[name]
    assert standins["STANDINS_WEBHOOK_SECRET"] == api["OMS_CARRIER_WEBHOOK_SECRET"]
    assert standins["STANDINS_PURCHASING_WEBHOOK_SECRET"] == api["OMS_PURCHASING_WEBHOOK_SECRET"]


def test_every_app_command_runs_code_that_exists(services: dict[str, dict[str, Any]]) -> None:
    commands = {name: command_of(services[name]) for name in APP_SERVICES}

    assert commands["migrate"] == ["python", "-m", "db.migrate"]
    assert commands["api"] == ["python", "-m", "api"]
    assert commands["worker"] == ["python", "worker.py"]
    assert commands["standins"] == ["python", "-m", "standins"]
    assert commands["backup"] == ["python", "-m", "scripts.backup", "worker"]
    for name, command in commands.items():
        assert runs_python_code_of_this_repo(command), f"{name}: {command}"


def test_every_dependency_names_a_service(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for dependency in service.get("depends_on", []):
            assert dependency in services, f"{name} depends on unknown {dependency}"


def test_api_and_worker_wait_for_migrations_and_search_attributes(services: dict[str, dict[str, Any]]) -> None:
    for name in ("api", "worker"):
        depends_on = services[name]["depends_on"]
        assert depends_on["migrate"]["condition"] == "service_completed_successfully"
        assert depends_on["temporal-admin-tools"]["condition"] == "service_completed_successfully"
        assert "temporal" in depends_on


def test_registered_search_attributes_are_those_the_workflows_use(services: dict[str, dict[str, Any]]) -> None:
    setup = services["temporal-admin-tools"]
    registered = dict(pair.split("=", 1) for pair in environment(setup)["SEARCH_ATTRIBUTES"].split())
    script = "\n".join(setup["command"])

    assert registered == SEARCH_ATTRIBUTES
    assert "temporal operator search-attribute create" in script
    assert "$$SEARCH_ATTRIBUTES" in script


def test_published_ports_are_api_8000_temporal_ui_8233_and_standins_8100(
    services: dict[str, dict[str, Any]],
) -> None:
    published = {
        name: [str(port).split(":")[0] for port in service.get("ports", [])] for name, service in services.items()
    }

    assert published["api"] == ["8000"]
    assert published["temporal-ui"] == ["8233"]
    assert published["standins"] == ["8100"]
    assert services["temporal-ui"]["ports"] == ["8233:8080"]
    assert {port for ports in published.values() for port in ports} == {"8000", "8233", "8100"}


def test_the_worker_serves_its_metrics_on_a_port_it_exposes_to_the_compose_network(
    services: dict[str, dict[str, Any]],
) -> None:
    worker = services["worker"]
    address = environment(worker)["OMS_WORKER_METRICS_ADDRESS"]
    host, port = address.rsplit(":", 1)

    # Beyond loopback, or nothing outside its container could scrape it.
    assert host == "0.0.0.0"
    assert [str(exposed) for exposed in worker["expose"]] == [port]
    assert Settings(worker_metrics_address=address).worker_metrics_address == address


def test_the_worker_runs_as_replicas_of_a_variable_count_with_no_fixed_name_or_host_port(
    services: dict[str, dict[str, Any]],
) -> None:
    worker = services["worker"]
    replicas = str(worker["deploy"]["replicas"])
    default = re.fullmatch(r"\$\{OMS_WORKER_REPLICAS:-(\d+)\}", replicas)

    assert default is not None, replicas
    assert int(interpolate(replicas)) == int(default[1]) >= 2
    # Names and host ports would clash between replicas.
    assert not {"container_name", "hostname", "ports"} & worker.keys()
    # A worker run with OMS_WORKER_PROCESSES above 1 has its supervisor's grace period within the container's.
    grace = re.fullmatch(r"(\d+)s", worker["stop_grace_period"])
    assert grace is not None
    assert Settings.model_fields["worker_stop_grace_seconds"].default < int(grace[1])


def test_the_backup_service_backs_up_every_database_of_the_compose_postgresql_into_a_volume(
    compose: dict[str, Any], services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    backup = services["backup"]
    for variable in list(os.environ):
        if variable.startswith("OMS_") or variable == "DATABASE_URL":
            monkeypatch.delenv(variable)
    for variable, value in environment(backup).items():
        monkeypatch.setenv(variable, value)

    settings = Settings(_env_file=None)  # type: ignore[call-arg]

    # The order database, and the two Temporal's auto-setup creates on the same server.
    databases = [settings.database_url, *settings.backup_temporal_urls]
    assert [url.rsplit("@", 1)[1] for url in databases] == [
        "postgresql:5432/oms",
        "postgresql:5432/temporal",
        "postgresql:5432/temporal_visibility",
    ]
    assert settings.backup_interval is not None
    # Its own task queue: the order workers never take a backup run, nor this worker an order.
    assert settings.task_queue == "backups" != Settings.model_fields["task_queue"].default
    volume, mount = backup["volumes"][0].split(":")
    assert volume in compose["volumes"]
    assert settings.backup_dir == mount
    assert backup["depends_on"]["temporal-admin-tools"]["condition"] == "service_completed_successfully"
    # The image has pg_dump of the server's major version for it, and the mount point belongs to its user.
    run = " ".join(argument for kind, argument in dockerfile_instructions() if kind == "RUN")
    server_major = services["postgresql"]["image"].split(":")[1]
    assert f"postgresql-client-{server_major}" in run
    assert f"chown oms:oms {mount}" in run


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines if line and not line.startswith("#")
    ]


def test_dockerfile_builds_on_python_311_slim_bookworm_and_installs_the_lock_file() -> None:
    instructions = dockerfile_instructions()
    run = [argument for kind, argument in instructions if kind == "RUN"]
    copied = [argument for kind, argument in instructions if kind == "COPY"]

    # Bookworm's own PostgreSQL client is 15, the production server's major version, for the backup service.
    assert instructions[0] == ("FROM", "python:3.11-slim-bookworm")
    assert any("postgresql-client-15" in command for command in run)
    assert any(re.search(r"pip install .*-r requirements\.lock", command) for command in run)
    assert any("requirements.lock" in argument for argument in copied)


def test_dockerfile_runs_the_api_as_a_non_root_user_by_default() -> None:
    instructions = dockerfile_instructions()
    users = [argument for kind, argument in instructions if kind == "USER"]
    cmd = [argument for kind, argument in instructions if kind == "CMD"]

    assert users
    assert users[-1] not in ("root", "0")
    assert cmd == ['["python", "-m", "api"]']
    assert runs_python_code_of_this_repo(["python", "-m", "api"])


def test_build_context_leaves_out_local_state() -> None:
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}

    assert {".git", ".venv", ".env", "data"} <= ignored
