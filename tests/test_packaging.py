"""The Dockerfile and docker-compose.yml, checked as text: no Docker engine runs here, so these
tests hold them to what the code really needs."""

from __future__ import annotations

import re
import tomllib
from typing import Any

import pytest
import yaml
from pydantic_settings import BaseSettings

from service import VERSION
from service.config import ApiSettings
from service.startup import KNOWN_VARIABLES, TOOL_VARIABLES
from tests.conftest import REPO_ROOT
from worker.config import WorkerSettings

API_COMMAND = ["picforge", "serve", "--host", "0.0.0.0", "--port", "8000"]
WORKER_COMMAND = ["python", "-m", "worker"]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    return document


@pytest.fixture(scope="module")
def ministack_override() -> dict[str, Any]:
    text = (REPO_ROOT / "docker-compose.ministack.yml").read_text()
    document: dict[str, Any] = yaml.safe_load(text)
    return document


@pytest.fixture(scope="module")
def dockerfile() -> str:
    return (REPO_ROOT / "Dockerfile").read_text()


def required_variables(settings: type[BaseSettings]) -> set[str]:
    required = {name for name, field in settings.model_fields.items() if field.is_required()}
    # The database is a URL or its parts; compose gives the URL.
    return {f"PICFORGE_{name.upper()}" for name in required | {"database_url"}}


def test_compose_runs_the_real_services(compose: dict[str, Any]) -> None:
    services = compose["services"]

    assert {"postgres", "aws", "api", "worker"} <= services.keys()
    assert services["postgres"]["image"].startswith("postgres:")
    assert services["api"]["command"] == API_COMMAND
    assert services["worker"]["command"] == WORKER_COMMAND
    assert services["api"]["build"] == services["worker"]["build"] == "."


def test_compose_localstack_is_a_version_that_needs_no_auth_token(
    compose: dict[str, Any],
) -> None:
    image = compose["services"]["aws"]["image"]

    name, version = image.split(":")
    assert name == "localstack/localstack"
    assert tuple(map(int, version.split("."))) <= (4, 14, 0)


@pytest.mark.parametrize(
    ("service", "settings"), [("api", ApiSettings), ("worker", WorkerSettings)]
)
def test_compose_gives_each_process_every_required_setting(
    compose: dict[str, Any], service: str, settings: type[BaseSettings]
) -> None:
    environment = compose["services"][service]["environment"]

    missing = required_variables(settings) - environment.keys()
    assert not missing


def test_compose_starts_processes_after_migrations_and_provisioning(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]

    assert services["migrate"]["command"] == ["picforge", "migrate"]
    for name in ("api", "worker"):
        depends_on = services[name]["depends_on"]
        assert depends_on["migrate"]["condition"] == "service_completed_successfully"
        assert depends_on["provision"]["condition"] == "service_completed_successfully"
    for name in ("postgres", "aws", "api"):
        assert "healthcheck" in services[name], name


def test_compose_publishes_ports_on_loopback_only(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} on every interface"


def test_the_release_the_code_names_is_the_packaged_one() -> None:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    assert project["version"] == VERSION


def test_dockerfile_installs_exactly_the_locked_dependencies(dockerfile: str) -> None:
    assert "COPY pyproject.toml uv.lock" in dockerfile
    assert re.search(r"uv sync --frozen --no-dev", dockerfile)
    makefile = (REPO_ROOT / "Makefile").read_text()
    [uv_version] = re.findall(r"^UV_VERSION := (\S+)$", makefile, re.MULTILINE)
    assert f"uv=={uv_version}" in dockerfile


def test_dockerfile_copies_every_packaged_module(dockerfile: str) -> None:
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    packages = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]

    for package in packages:
        assert re.search(rf"^COPY {package} \./{package}$", dockerfile, re.MULTILINE), package


def test_dockerfile_runs_the_api_as_an_unprivileged_user(dockerfile: str) -> None:
    final_stage = dockerfile.rsplit("\nFROM ", 1)[1]
    [user] = re.findall(r"^USER (\S+)$", final_stage, re.MULTILINE)
    assert user.split(":")[0] not in {"root", "0"}
    [command] = re.findall(r"^CMD (.+)$", final_stage, re.MULTILINE)
    assert yaml.safe_load(command) == API_COMMAND


def test_dockerfile_pins_its_base_image(dockerfile: str) -> None:
    for image in re.findall(r"^FROM (\S+)", dockerfile, re.MULTILINE):
        assert ":" in image and not image.endswith(":latest"), image


# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?message}, ${VAR?message}
INTERPOLATION = re.compile(r"\$\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<rest>[^}]*))?\}")
ENV_EXAMPLE_LINE = re.compile(r"^#?\s?(?P<name>[A-Z][A-Z0-9_]*)=", re.MULTILINE)


def compose_texts() -> dict[str, str]:
    return {
        name: (REPO_ROOT / name).read_text()
        for name in ("docker-compose.yml", "docker-compose.ministack.yml")
    }


def env_example() -> str:
    return (REPO_ROOT / ".env.example").read_text()


def setting_names(settings: type[BaseSettings]) -> set[str]:
    return {f"PICFORGE_{name.upper()}" for name in settings.model_fields}


def test_start_up_knows_every_setting_of_either_process() -> None:
    """What `service.startup.unknown_settings` takes for a picforge name: no more, no less."""
    settings = setting_names(ApiSettings) | setting_names(WorkerSettings)

    assert settings | TOOL_VARIABLES == KNOWN_VARIABLES


def test_start_up_knows_every_picforge_name_the_code_reads_from_the_environment() -> None:
    """A name a tool or the suite reads, unknown to start-up, would be warned of as a typo."""
    reads = re.compile(r"(?:environ|env)(?:\.get\(|\[|\.setdefault\()\"(PICFORGE_[A-Z0-9_]+)\"")
    sources = [
        path
        for folder in ("service", "worker", "devstack", "tests", "bench")
        for path in (REPO_ROOT / folder).rglob("*.py")
    ]
    read = {name for path in sources for name in reads.findall(path.read_text())}

    assert "PICFORGE_TEST_ARTIFACTS" in read  # the pattern finds what the suite reads
    assert not read - KNOWN_VARIABLES


def test_env_example_lists_every_setting_and_nothing_else() -> None:
    listed = {m["name"] for m in ENV_EXAMPLE_LINE.finditer(env_example())}
    settings = setting_names(ApiSettings) | setting_names(WorkerSettings)
    compose_variables = {
        m["name"] for text in compose_texts().values() for m in INTERPOLATION.finditer(text)
    }

    assert not settings - listed, "add these to .env.example"
    picforge = {name for name in listed if name.startswith("PICFORGE_")}
    assert not picforge - settings - TOOL_VARIABLES, "no such setting"
    assert not {n for n in listed if not n.startswith("PICFORGE_")} - compose_variables


def test_compose_required_variables_fail_fast_and_env_example_sets_them() -> None:
    uncommented = {
        line.split("=", 1)[0]
        for line in env_example().splitlines()
        if line and not line.startswith("#")
    }
    required = set()
    for name, text in compose_texts().items():
        for match in INTERPOLATION.finditer(text):
            if match["op"] in {":?", "?"}:
                assert match["rest"].strip(), f"{name}: ${{{match['name']}:?}} without a message"
                required.add(match["name"])
            else:
                assert match["op"] in {":-", "-"}, f"{name}: ${{{match['name']}}} may be empty"

    assert required == {"POSTGRES_PASSWORD"}
    assert required <= uncommented


def test_compose_hands_env_file_settings_to_both_processes(compose: dict[str, Any]) -> None:
    for name in ("api", "worker"):
        [env_file] = compose["services"][name]["env_file"]
        assert env_file == {"path": ".env", "required": False}


def test_compose_provisions_cors_for_the_published_api_origin(compose: dict[str, Any]) -> None:
    services = compose["services"]
    command = services["provision"]["command"]
    origin = command[command.index("--cors-origin") + 1]
    [published] = services["api"]["ports"]

    assert origin == f"http://localhost:{published.split(':')[1]}"


def test_ministack_override_swaps_only_the_emulator_at_the_tested_version(
    compose: dict[str, Any], ministack_override: dict[str, Any]
) -> None:
    makefile = (REPO_ROOT / "Makefile").read_text()
    [version] = re.findall(r"^MINISTACK_VERSION := (\S+)$", makefile, re.MULTILINE)
    [(name, service)] = ministack_override["services"].items()

    assert name == "aws" and name in compose["services"]
    assert service["image"] == f"ministackorg/ministack:{version}"
    assert service["environment"]["GATEWAY_PORT"] == "4566"
    assert "_ministack/health" in " ".join(service["healthcheck"]["test"])
    assert "ports" not in service, "the base file already publishes 4566 on loopback"
