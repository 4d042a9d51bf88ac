"""The connection budget: every api and worker task at its autoscaling maximum, each pool full,
fits under the database's max_connections with room for migrations and operators. rds.tf
checks it as a precondition at plan time; this checks the same arithmetic on every
environment's tfvars (and on the defaults) without a plan, and that the arithmetic counts what
the code really opens."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import text

from service.config import DatabaseSettings
from service.db import create_engine

from .terraform import INFRA_DIR, Module, parse_file

ENVIRONMENTS = sorted(path.stem for path in (INFRA_DIR / "environments").glob("*.tfvars"))


def values_for(tf: Module, environment: str | None) -> dict[str, Any]:
    values = {name: body.get("default") for name, body in tf.variables.items()}
    if environment is not None:
        values.update(parse_file(INFRA_DIR / "environments" / f"{environment}.tfvars"))
    return values


def budget(tf: Module, values: dict[str, Any]) -> tuple[int, int]:
    """(connections at full scale + reserve, max_connections), as database_access.tf counts."""
    api_per_task = values["api_db_pool_size"] + 1
    worker_per_task = values["worker_concurrency"] + 3
    at_max = values["api_max_count"] * api_per_task + values["worker_max_count"] * worker_per_task
    by_class = tf.locals["db_max_connections_by_class"]
    limit = values.get("db_max_connections") or by_class[values["db_instance_class"]]
    return at_max + tf.locals["db_reserved_connections"], limit


def test_budget_locals_are_the_arithmetic_this_test_does(tf: Module) -> None:
    locals_ = tf.locals
    assert locals_["api_connections_per_task"] == "${local.api_db_pool_size + 1}"
    assert locals_["worker_db_pool_size"] == "${var.worker_concurrency + 3}"
    assert locals_["worker_connections_per_task"] == "${local.worker_db_pool_size}"
    assert "var.api_max_count * local.api_connections_per_task" in locals_["db_connections_at_max"]
    assert (
        "var.worker_max_count * local.worker_connections_per_task"
        in locals_["db_connections_at_max"]
    )
    assert locals_["db_budget_fits"] == (
        "${local.db_connections_at_max + local.db_reserved_connections <= local.db_max_connections}"
    )
    preconditions = tf.resource("aws_db_instance", "this")["lifecycle"][0]["precondition"]
    # Refused only without RDS Proxy: with one, the proxy bounds what reaches the instance.
    assert any(
        check["condition"] == "${local.db_budget_fits || local.db_proxy_enabled}"
        for check in preconditions
    )


def proxy_enabled(values: dict[str, Any], fits: bool) -> bool:
    """database_proxy.tf's local.db_proxy_enabled."""
    choice = values["database_proxy"]
    return choice == "always" or (choice == "auto" and not fits)


def test_proxy_choice_is_the_rule_this_test_mirrors(tf: Module) -> None:
    assert tf.locals["db_proxy_enabled"] == (
        '${var.database_proxy == "always" || '
        '(var.database_proxy == "auto" && !local.db_budget_fits)}'
    )
    assert tf.variables["database_proxy"]["default"] == "auto"
    (validation,) = tf.variables["database_proxy"]["validation"]
    assert validation["condition"] == (
        '${contains(["auto", "always", "never"], var.database_proxy)}'
    )


@pytest.mark.parametrize("environment", [None, *ENVIRONMENTS])
def test_budget_holds_at_full_scale(tf: Module, environment: str | None) -> None:
    needed, limit = budget(tf, values_for(tf, environment))
    assert needed <= limit, f"{environment or 'defaults'}: {needed} connections > {limit}"


def test_budget_counts_every_task_the_services_can_scale_to(tf: Module) -> None:
    """The counts in the budget are the autoscaling maximums, not the running minimums."""
    assert tf.resource("aws_appautoscaling_target", "api")["max_capacity"] == "${var.api_max_count}"
    worker = tf.resource("aws_appautoscaling_target", "worker")
    assert worker["max_capacity"] == "${var.worker_max_count}"


def test_containers_get_the_pool_sizes_the_budget_counts(tf: Module) -> None:
    api = tf.locals["api_environment"]
    worker = tf.locals["worker_environment"]
    assert api["PICFORGE_DB_POOL_SIZE"] == "${tostring(local.api_db_pool_size)}"
    assert worker["PICFORGE_DB_POOL_SIZE"] == "${tostring(local.worker_db_pool_size)}"


def test_budget_refuses_prod_scale_on_the_dev_instance_class(tf: Module) -> None:
    """The check bites: prod's maximums do not fit dev's db.t4g.micro."""
    values = values_for(tf, "prod")
    values["db_instance_class"] = values_for(tf, "dev")["db_instance_class"]
    needed, limit = budget(tf, values)
    assert needed > limit


@pytest.mark.parametrize("environment", [None, *ENVIRONMENTS])
def test_no_environment_runs_a_proxy_it_does_not_need(tf: Module, environment: str | None) -> None:
    """Every shipped setting fits, so "auto" puts no RDS Proxy (and no cost) in front."""
    values = values_for(tf, environment)
    needed, limit = budget(tf, values)
    assert values["database_proxy"] == "auto"
    assert not proxy_enabled(values, needed <= limit)


@pytest.mark.parametrize(
    ("choice", "proxy", "refused"),
    [("auto", True, False), ("always", True, False), ("never", False, True)],
)
def test_a_budget_that_does_not_fit_gets_a_proxy_unless_told_never(
    tf: Module, choice: str, proxy: bool, refused: bool
) -> None:
    values = values_for(tf, "prod")
    values["db_instance_class"] = values_for(tf, "dev")["db_instance_class"]
    values["database_proxy"] = choice
    needed, limit = budget(tf, values)
    fits = needed <= limit
    assert not fits
    assert proxy_enabled(values, fits) is proxy
    assert (not (fits or proxy_enabled(values, fits))) is refused


def test_always_puts_a_proxy_in_front_of_a_budget_that_fits(tf: Module) -> None:
    values = values_for(tf, "dev")
    values["database_proxy"] = "always"
    needed, limit = budget(tf, values)
    assert needed <= limit and proxy_enabled(values, fits=True)


def test_proxy_leaves_the_reserve_to_the_owner_tasks(tf: Module) -> None:
    """The proxy may take max_connections less the reserve, in AWS's 1-100 percent."""
    assert tf.locals["db_proxy_max_connections_percent"] == (
        "${local.db_max_connections > 0 ? max(1, floor(100 * (local.db_max_connections - "
        "local.db_reserved_connections) / local.db_max_connections)) : 100}"
    )
    reserve = tf.locals["db_reserved_connections"]
    for limit in tf.locals["db_max_connections_by_class"].values():
        percent = max(1, (100 * (limit - reserve)) // limit)
        assert 1 <= percent <= 100
        assert limit * percent // 100 + reserve <= limit
    (pool,) = tf.resource("aws_db_proxy_default_target_group", "this")["connection_pool_config"]
    assert pool["max_connections_percent"] == "${local.db_proxy_max_connections_percent}"
    assert pool["max_idle_connections_percent"] == (
        "${min(50, local.db_proxy_max_connections_percent)}"
    )


async def test_engine_opens_at_most_pool_size(unmigrated_database_url: str) -> None:
    """What one process can hold: pool_size, however many sessions want one."""
    settings = DatabaseSettings(database_url=unmigrated_database_url, db_pool_size=3)
    engine = create_engine(settings)
    observer = create_engine(DatabaseSettings(database_url=unmigrated_database_url))
    release = asyncio.Event()
    most = 0

    async def hold() -> None:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
            await release.wait()

    async def count() -> int:
        async with observer.connect() as connection:
            result = await connection.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
            return int(result.scalar_one())

    holders = [asyncio.create_task(hold()) for _ in range(6)]
    try:
        for _ in range(20):
            await asyncio.sleep(0.1)
            most = max(most, await count())
    finally:
        release.set()
        await asyncio.gather(*holders)
        await engine.dispose()
        await observer.dispose()
    assert most == 3
