"""A worker task's render processes, each capped at its address-space budget, fit in the task
beside the worker process: ecs.tf checks it as a precondition at plan time; this checks the
same arithmetic on every environment's tfvars (and the defaults) without a plan."""

from __future__ import annotations

import pytest

from worker.config import WorkerSettings

from .terraform import Module
from .test_connection_budget import ENVIRONMENTS, values_for


def test_worker_memory_locals_are_the_arithmetic_this_test_does(tf: Module) -> None:
    assert tf.locals["worker_render_processes"] == "${max(1, floor(var.worker_cpu / 1024))}"
    preconditions = tf.resource("aws_ecs_task_definition", "worker")["lifecycle"][0]
    assert preconditions["precondition"][0]["condition"] == "${local.worker_memory_fits}"
    fits = tf.locals["worker_memory_fits"]
    assert "local.worker_render_processes * var.worker_render_memory_mb" in fits
    assert "local.worker_process_memory_mb" in fits and "<= var.worker_memory" in fits


@pytest.mark.parametrize("environment", [None, *ENVIRONMENTS])
def test_render_processes_fit_in_the_worker_task(tf: Module, environment: str | None) -> None:
    values = values_for(tf, environment)
    processes = max(1, values["worker_cpu"] // 1024)
    needed = processes * values["worker_render_memory_mb"] + tf.locals["worker_process_memory_mb"]
    assert needed <= values["worker_memory"], (environment, needed, values["worker_memory"])


def test_the_worker_takes_the_render_budget_terraform_sets(tf: Module) -> None:
    environment = tf.locals["worker_environment"]
    assert environment["PICFORGE_RENDER_MEMORY_MB"] == "${tostring(var.worker_render_memory_mb)}"
    field = WorkerSettings.model_fields["render_memory_mb"]
    assert field.default == tf.variables["worker_render_memory_mb"]["default"]
