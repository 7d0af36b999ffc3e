"""The deployment files agree with the code.

docker-compose.yml must run a worker for every queue the code publishes to, health-check every
service others wait on, point the app containers at its own PostgreSQL, Redis and mail catcher,
and keep Redis durable. .env.example must document exactly the variables ``Settings`` reads.
Each check is a function returning the problems it finds, so the tests at the end can show it
notices a broken file (a check that cannot fail proves nothing).
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from notify.categories import CATEGORIES
from notify.celery_app import create_celery
from notify.config import Settings
from notify.queues import ALL_QUEUES, TASK_ROUTES, Queue

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"

WORKER_COMMAND = ["celery", "-A", "worker", "worker"]
APP_SERVICES = {
    "migrate",
    "web",
    "beat",
    "worker-essential",
    "worker-bulk",
    "worker-periodic",
    "worker-callbacks",
    "inbound",
}
ENV_PREFIX = str(Settings.model_config.get("env_prefix", ""))
ASSIGNMENT = re.compile(r"^#?\s*(NOTIFY_[A-Z0-9_]+)=(.*)$")
ANY_VARIABLE = re.compile(r"\bNOTIFY_[A-Z0-9_]+\b")

Compose = dict[str, Any]


# --- reading the files ------------------------------------------------------------------------


def load_compose() -> Compose:
    loaded = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict) and isinstance(loaded.get("services"), dict)
    return loaded


@pytest.fixture
def compose() -> Compose:
    return load_compose()


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """``Settings()`` reads the environment: start from the defaults whatever the shell has."""
    for name in [name for name in os.environ if name.startswith(ENV_PREFIX)]:
        monkeypatch.delenv(name)
    # beat_schedule.py sits at the project root, next to worker.py, outside the package.
    monkeypatch.syspath_prepend(str(ROOT))


def argv(command: str | list[Any] | None) -> list[str]:
    """A compose ``command`` (string or list) as the argument list the container runs."""
    if command is None:
        return []
    if isinstance(command, str):
        return shlex.split(command)
    return [str(part) for part in command]


def option_value(args: list[str], *names: str) -> str | None:
    """The value of ``-Q a,b``, ``-Qa,b``, ``--queues a,b`` or ``--queues=a,b``."""
    for index, arg in enumerate(args):
        for name in names:
            if arg == name:
                return args[index + 1] if index + 1 < len(args) else ""
            if name.startswith("--") and arg.startswith(f"{name}="):
                return arg.split("=", 1)[1]
            if not name.startswith("--") and arg.startswith(name) and len(arg) > len(name):
                return arg[len(name) :]
    return None


def worker_queues(compose: Compose) -> dict[str, set[str]]:
    """Each Celery worker service and the queues its ``-Q`` names."""
    workers: dict[str, set[str]] = {}
    for name, service in compose["services"].items():
        args = argv(service.get("command"))
        if args[: len(WORKER_COMMAND)] != WORKER_COMMAND:
            continue
        value = option_value(args, "-Q", "--queues")
        assert value, f"worker service {name} has no -Q: it would consume the default queue only"
        workers[name] = {queue.strip() for queue in value.split(",") if queue.strip()}
    return workers


def consumed_queues(compose: Compose) -> set[str]:
    return set().union(*worker_queues(compose).values())


_DEFAULTED = re.compile(r"^\$\{[A-Z_]+:-(.*)\}$")


def environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's ``environment`` in either compose form (mapping, or list of ``K=V``), with
    ``${VAR:-default}`` read as its default (what compose gives when VAR is unset)."""
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        pairs = dict(str(item).split("=", 1) for item in raw)
    else:
        pairs = {str(key): "" if value is None else str(value) for key, value in raw.items()}
    return {key: _DEFAULTED.sub(r"\1", value) for key, value in pairs.items()}


def depends_on(service: dict[str, Any]) -> dict[str, str]:
    """A service's dependencies and their condition (the short list form means started)."""
    raw = service.get("depends_on") or {}
    if isinstance(raw, list):
        return dict.fromkeys(raw, "service_started")
    return {name: (spec or {}).get("condition", "service_started") for name, spec in raw.items()}


def settings_variables() -> set[str]:
    return {f"{ENV_PREFIX}{name}".upper() for name in Settings.model_fields}


def build_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    from beat_schedule import build_schedule as build

    return build(settings)


SCHEDULE_SETTINGS: dict[str, Callable[[], Settings]] = {
    "embedded-broker": Settings,
    "redis-broker": lambda: Settings(broker_url="redis://127.0.0.1:6379/0"),
}


# --- the checks -------------------------------------------------------------------------------


def queue_problems(compose: Compose) -> list[str]:
    consumed = consumed_queues(compose)
    defined = {queue.value for queue in ALL_QUEUES}
    problems = [f"no worker consumes queue {queue!r}" for queue in sorted(defined - consumed)]
    problems += [
        f"a worker consumes unknown queue {queue!r}" for queue in sorted(consumed - defined)
    ]
    return problems


def route_and_lane_problems(compose: Compose) -> list[str]:
    consumed = consumed_queues(compose)
    needed = [(f"route of {task}", str(route["queue"])) for task, route in TASK_ROUTES.items()]
    needed += [(f"lane of category {key}", str(cat.lane)) for key, cat in CATEGORIES.items()]
    return [
        f"{why} is queue {queue!r}, which no worker consumes"
        for why, queue in needed
        if queue not in consumed
    ]


def redis_problems(compose: Compose) -> list[str]:
    redis = compose["services"].get("redis")
    if redis is None:
        return ["no redis service"]
    args = argv(redis.get("command"))
    if not args or args[0] != "redis-server":
        return [f"redis does not run redis-server with options: {args}"]
    options = {
        arg.removeprefix("--"): (args[index + 1] if index + 1 < len(args) else "")
        for index, arg in enumerate(args)
        if arg.startswith("--")
    }
    wanted = {"appendonly": "yes", "maxmemory-policy": "noeviction"}
    return [
        f"redis runs with --{key} {options.get(key)!r}, needs {value!r}"
        for key, value in wanted.items()
        if options.get(key) != value
    ]


def healthcheck_problems(compose: Compose) -> list[str]:
    services = compose["services"]
    problems = []
    for name, service in services.items():
        for target, condition in depends_on(service).items():
            if target not in services:
                problems.append(f"{name} depends on {target}, which is not a service")
            elif condition == "service_healthy":
                check = services[target].get("healthcheck") or {}
                if not check.get("test") or check.get("disable"):
                    problems.append(f"{name} waits for {target} to be healthy; it has no check")
    return problems


def app_environment_problems(compose: Compose) -> list[str]:
    services = compose["services"]
    postgres_env = environment(services.get("postgres", {}))
    expected = {
        "NOTIFY_DATABASE_URL": (("postgresql", "postgresql+psycopg"), "postgres", 5432),
        "NOTIFY_BROKER_URL": (("redis",), "redis", 6379),
        "NOTIFY_SMTP_URL": (("smtp",), "mailcatcher", 1025),
    }
    problems = []
    for name in sorted(APP_SERVICES):
        if name not in services:
            problems.append(f"no {name} service")
            continue
        env = environment(services[name])
        for variable, (schemes, host, port) in expected.items():
            url = urlsplit(env.get(variable, ""))
            if url.scheme not in schemes or url.hostname != host or url.port != port:
                problems.append(f"{name}: {variable}={env.get(variable)!r}, not {host}:{port}")
            if host not in services:
                problems.append(f"{name}: {variable} names {host}, which is not a service")
        database = urlsplit(env.get("NOTIFY_DATABASE_URL", ""))
        credentials = (database.username, database.password, database.path.lstrip("/"))
        wanted = tuple(postgres_env.get(f"POSTGRES_{key}") for key in ("USER", "PASSWORD", "DB"))
        if credentials != wanted:
            problems.append(
                f"{name}: NOTIFY_DATABASE_URL user/password/db {credentials} != {wanted}"
            )
    return problems


def documented_variables(text: str) -> list[str]:
    """Variables given a line ``NOTIFY_X=...`` (commented out or not), in file order."""
    return [match.group(1) for line in text.splitlines() if (match := ASSIGNMENT.match(line))]


def env_example_problems(text: str) -> list[str]:
    read = settings_variables()
    documented = documented_variables(text)
    mentioned = set(ANY_VARIABLE.findall(text))
    problems = [f"{name} is read by Settings, missing" for name in sorted(read - set(documented))]
    problems += [f"{name} is not read by Settings" for name in sorted(mentioned - read)]
    problems += [
        f"{name} appears twice" for name in sorted(set(documented)) if documented.count(name) > 1
    ]
    return problems


# --- docker-compose.yml -----------------------------------------------------------------------


def test_compose_workers_consume_exactly_the_queues_defined_in_notify_queues(
    compose: Compose,
) -> None:
    assert worker_queues(compose), "no service runs `celery -A worker worker`"
    assert queue_problems(compose) == []


def test_every_task_route_and_category_lane_is_consumed_by_a_compose_worker(
    compose: Compose,
) -> None:
    assert route_and_lane_problems(compose) == []


@pytest.mark.parametrize("make_settings", SCHEDULE_SETTINGS.values(), ids=SCHEDULE_SETTINGS.keys())
@pytest.mark.usefixtures("clean_environment")
def test_every_beat_entry_names_a_task_registered_on_the_celery_app(
    make_settings: Callable[[], Settings],
) -> None:
    settings = make_settings()
    schedule = build_schedule(settings)
    app = create_celery(settings)
    assert schedule, "beat has nothing to run"
    assert "notify.no_such_task" not in app.tasks  # the registry is not permissive
    tasks = {key: entry["task"] for key, entry in schedule.items()}
    assert {key: task for key, task in tasks.items() if task not in app.tasks} == {}


@pytest.mark.parametrize("make_settings", SCHEDULE_SETTINGS.values(), ids=SCHEDULE_SETTINGS.keys())
@pytest.mark.usefixtures("clean_environment")
def test_every_beat_entry_is_published_to_a_queue_a_compose_worker_consumes(
    make_settings: Callable[[], Settings], compose: Compose
) -> None:
    consumed = consumed_queues(compose)
    schedule = build_schedule(make_settings())
    queues = {key: entry.get("options", {}).get("queue") for key, entry in schedule.items()}
    assert {key: queue for key, queue in queues.items() if queue not in consumed} == {}


def test_compose_redis_keeps_broker_messages_with_appendonly_and_noeviction(
    compose: Compose,
) -> None:
    assert redis_problems(compose) == []


def test_compose_gives_the_bulk_lane_less_cpu_weight_than_the_essential_lane(
    compose: Compose,
) -> None:
    """A campaign must not take CPU from an alert: the bulk worker weighs less than the others."""
    default_weight = 1024
    weights = {
        name: int(compose["services"][name].get("cpu_shares", default_weight))
        for name in worker_queues(compose)
    }
    lanes = worker_queues(compose)
    bulk = [name for name, queues in lanes.items() if Queue.BULK.value in queues]
    essential = [name for name, queues in lanes.items() if Queue.ESSENTIAL.value in queues]
    assert bulk and essential
    assert max(weights[name] for name in bulk) < min(weights[name] for name in essential)


def test_compose_rabbitmq_profile_matches_the_broker_url_it_documents(compose: Compose) -> None:
    """The rabbitmq profile's service has the user, password and vhost of the documented
    NOTIFY_BROKER_URL, a health check workers may wait on, and a volume for its queues."""
    text = COMPOSE_FILE.read_text()
    documented = re.search(r"NOTIFY_BROKER_URL=(amqp://\S+)", text)
    assert documented is not None
    url = urlsplit(documented.group(1))
    rabbitmq = compose["services"]["rabbitmq"]
    assert rabbitmq["profiles"] == ["rabbitmq"]
    env = environment(rabbitmq)
    assert (url.hostname, url.port) == ("rabbitmq", 5672)
    assert (url.username, url.password, url.path.lstrip("/")) == (
        env["RABBITMQ_DEFAULT_USER"],
        env["RABBITMQ_DEFAULT_PASS"],
        env["RABBITMQ_DEFAULT_VHOST"],
    )
    assert "healthcheck" in rabbitmq and "/var/lib/rabbitmq" in rabbitmq["volumes"][0]
    for name in [*worker_queues(compose), "web"]:
        wanted = compose["services"][name]["depends_on"]["rabbitmq"]
        assert wanted == {"condition": "service_healthy", "required": False}
    # Without the profile (NOTIFY_BROKER_URL unset) the broker is the compose Redis.
    assert environment(compose["services"]["web"])["NOTIFY_BROKER_URL"].startswith("redis://")


def test_every_service_waited_on_as_healthy_in_compose_has_a_healthcheck(
    compose: Compose,
) -> None:
    waited_on = [
        target
        for service in compose["services"].values()
        for target, condition in depends_on(service).items()
        if condition == "service_healthy"
    ]
    assert waited_on, "nothing waits for a healthy service: the check below would be empty"
    assert healthcheck_problems(compose) == []


def test_compose_app_services_reach_the_compose_postgres_redis_and_mail_catcher(
    compose: Compose,
) -> None:
    built = {name for name, service in compose["services"].items() if "build" in service}
    assert built == APP_SERVICES | set(worker_queues(compose))
    images = {compose["services"][name].get("image") for name in built}
    assert len(images) == 1 and None not in images, f"app services use images {images}"
    assert app_environment_problems(compose) == []


def test_compose_app_services_run_in_production_and_refuse_to_start_without_secrets(
    compose: Compose,
) -> None:
    for name in sorted(APP_SERVICES):
        env = environment(compose["services"][name])
        assert env.get("NOTIFY_ENV") == "production", name
        for variable in (
            "NOTIFY_PUBLIC_URL",
            "NOTIFY_SECRET_KEYS",
            "NOTIFY_HASH_KEY",
            "NOTIFY_DATA_KEYS",
            "NOTIFY_POSTAL_ADDRESS",
        ):
            assert re.fullmatch(rf"\$\{{{variable}:\?[^}}]+\}}", env.get(variable, "")), (
                f"{name}: {variable} must be ${{{variable}:?message}}, is {env.get(variable)!r}"
            )


# --- .env.example -----------------------------------------------------------------------------


def test_env_example_documents_every_variable_settings_reads_and_no_other() -> None:
    assert len(settings_variables()) == len(Settings.model_fields) > 10
    assert env_example_problems(ENV_EXAMPLE.read_text(encoding="utf-8")) == []


def test_env_example_gives_each_variable_a_comment_and_shows_only_its_default() -> None:
    lines = ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
    fields = Settings.model_fields
    for index, line in enumerate(lines):
        match = ASSIGNMENT.match(line)
        if match is None:
            continue
        name, value = match.groups()
        assert index > 0 and lines[index - 1].startswith("# "), f"{name} has no comment above it"
        assert not ASSIGNMENT.match(lines[index - 1]), f"{name} has no comment above it"
        default = fields[name.removeprefix(ENV_PREFIX).lower()].default
        if value:
            assert value == str(default), f"{name}={value} is not the default {default!r}"


# --- the checks notice broken files -----------------------------------------------------------


def test_queue_checks_notice_a_lane_without_a_worker() -> None:
    broken = load_compose()
    del broken["services"]["worker-bulk"]
    assert "no worker consumes queue 'bulk'" in queue_problems(broken)
    assert any("lane of category product_updates" in p for p in route_and_lane_problems(broken))


def test_queue_checks_notice_a_worker_on_an_unknown_queue_and_read_every_q_spelling() -> None:
    broken = load_compose()
    services = broken["services"]
    services["worker-bulk"]["command"] = "celery -A worker worker --queues=bulk,bulky"
    services["worker-periodic"]["command"] = ["celery", "-A", "worker", "worker", "-Qperiodic"]
    assert worker_queues(broken)["worker-bulk"] == {"bulk", "bulky"}
    assert worker_queues(broken)["worker-periodic"] == {"periodic"}
    assert queue_problems(broken) == ["a worker consumes unknown queue 'bulky'"]


def test_redis_check_notices_a_broker_without_aof_or_with_eviction() -> None:
    broken = load_compose()
    broken["services"]["redis"]["command"] = "redis-server --maxmemory-policy allkeys-lru"
    assert len(redis_problems(broken)) == 2


def test_healthcheck_check_notices_a_dependency_without_a_healthcheck() -> None:
    broken = load_compose()
    del broken["services"]["postgres"]["healthcheck"]
    problems = healthcheck_problems(broken)
    assert problems and all("postgres" in problem for problem in problems)


def test_environment_check_notices_an_app_service_pointed_elsewhere() -> None:
    broken = load_compose()
    web = broken["services"]["web"]
    web["environment"] = {**environment(web), "NOTIFY_BROKER_URL": "redis://127.0.0.1:6379/0"}
    assert app_environment_problems(broken) == [
        "web: NOTIFY_BROKER_URL='redis://127.0.0.1:6379/0', not redis:6379"
    ]


def test_env_example_check_notices_a_missing_and_an_unknown_variable() -> None:
    text = ENV_EXAMPLE.read_text(encoding="utf-8")
    without = "\n".join(line for line in text.splitlines() if "NOTIFY_MAX_ATTEMPTS=" not in line)
    assert env_example_problems(without) == ["NOTIFY_MAX_ATTEMPTS is read by Settings, missing"]
    extra = text + "\n# A retired setting.\n# NOTIFY_NO_SUCH_SETTING=1\n"
    assert env_example_problems(extra) == ["NOTIFY_NO_SUCH_SETTING is not read by Settings"]


# --- the image ----------------------------------------------------------------------------------

DOCKERFILE = ROOT / "Dockerfile"
# Folders the code reads next to the package (templates, catalogues, migrations).
READ_BESIDE_THE_PACKAGE = ("templates", "translations", "migrations")


def image_problems(dockerfile: str) -> list[str]:
    """What the image lacks: a folder the code reads, or the catalogues compiled before the
    image drops to its own user."""
    lines = [line.strip() for line in dockerfile.splitlines()]
    copied = {
        shlex.split(line)[1].strip("./")
        for line in lines
        if line.startswith("COPY ") and len(shlex.split(line)) == 3
    }
    problems = [
        f"{folder}/ is not copied" for folder in READ_BESIDE_THE_PACKAGE if folder not in copied
    ]
    compile_at = next((i for i, line in enumerate(lines) if "pybabel compile" in line), None)
    user_at = next((i for i, line in enumerate(lines) if line.startswith("USER ")), len(lines))
    if compile_at is None or compile_at > user_at:
        problems.append("the catalogues are not compiled while building the image")
    return problems


def test_the_image_copies_what_the_code_reads_and_compiles_the_catalogues() -> None:
    assert image_problems(DOCKERFILE.read_text(encoding="utf-8")) == []


def test_the_image_check_notices_missing_catalogues() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    broken = "\n".join(line for line in text.splitlines() if "translations" not in line)
    assert image_problems(broken) == [
        "translations/ is not copied",
        "the catalogues are not compiled while building the image",
    ]
