"""The hostile corpus through the real stack: the emulator's S3 and SQS, PostgreSQL, the real
worker with one render process. Each original ends `failed` with its code (or `ready`, if it is
a legitimate image the budget allows), within its CPU budget and under the memory cap, and a
good image uploaded right behind it is `ready` within seconds: nothing stalls the worker.

Set PICFORGE_HOSTILE_TABLE=<path> to have the measured table (README, "Hostile input") written.
"""

from __future__ import annotations

import logging
import os
import re
import time
import uuid
from dataclasses import dataclass

import pytest

from tests.worker.conftest import Images, StartWorker, png_bytes
from tests.worker.hostile import CPU, MEMORY, Case, big_canvases, corpus
from worker.costs import MiB, RenderBudget
from worker.failures import client_message
from worker.renditions import DEFAULT_PRESETS, Preset

MESSAGES = "picforge_worker_messages_total"
# The default budget, as a production task has it.
BUDGET = RenderBudget()
# After the hostile original ends, its successor (queued right behind it) must be ready this
# soon: a generous bound for a busy CI machine, far below any budget.
GOOD_WITHIN_S = 15
_COST = re.compile(
    r"image_id=(?P<id>\S+) .*cpu_s=(?P<cpu>[\d.]+) peak_mib=(?P<peak>\d+|-)", re.DOTALL
)


@dataclass(frozen=True)
class Measured:
    case: Case
    status: str
    code: str | None
    cpu_s: float
    peak_mib: int | None
    wall_s: float


def cost_of(caplog: pytest.LogCaptureFixture, image_id: uuid.UUID) -> tuple[float, int | None]:
    for record in reversed(caplog.records):
        found = _COST.search(record.getMessage())
        if found and found["id"] == str(image_id):
            peak = found["peak"]
            return float(found["cpu"]), None if peak == "-" else int(peak)
    raise AssertionError(f"no cost logged for {image_id}")


async def run_case(
    images: Images, caplog: pytest.LogCaptureFixture, case: Case, good: bytes, budget_s: float
) -> Measured:
    started = time.monotonic()
    # As the API leaves it: a declared size (never 0), then whatever bytes the attacker sends.
    hostile_id = await images.add_row(
        content_type=case.content_type, size_bytes=max(1, len(case.data))
    )
    await images.upload(hostile_id, case.data, case.content_type)
    good_id = await images.create(good)  # right behind it, on the one render process
    image = await images.wait_for(hostile_id, "ready", "failed", timeout_s=budget_s + 30)
    if image.status == "failed":
        assert image.error_code is not None
        assert image.error_message == client_message(image.error_code), case.name
    wall_s = time.monotonic() - started
    ended = time.monotonic()
    await images.wait_for(good_id, "ready", timeout_s=GOOD_WITHIN_S)
    assert time.monotonic() - ended < GOOD_WITHIN_S, f"{case.name}: the next image stalled"
    cpu_s, peak_mib = cost_of(caplog, hostile_id)
    return Measured(case, image.status, image.error_code, cpu_s, peak_mib, wall_s)


def check(measured: Measured) -> None:
    case = measured.case
    expected = ("failed", case.code) if case.code else ("ready", None)
    assert (measured.status, measured.code) == expected, case.name
    # Whole seconds are the kernel's granularity; a kill is reported at the child's total.
    assert measured.cpu_s <= BUDGET.cpu_max_s + 1, case.name
    if measured.peak_mib is not None:
        assert measured.peak_mib * MiB < BUDGET.memory_bytes, case.name


def write_table(rows: list[Measured]) -> None:
    path = os.environ.get("PICFORGE_HOSTILE_TABLE")
    if not path:
        return
    lines = [
        f"| {m.case.name} | {len(m.case.data):,} B | `{m.code or 'ready'}` | "
        f"{'-' if m.peak_mib is None else m.peak_mib} | {m.cpu_s:.2f} |"
        for m in rows
    ]
    with open(path, "a") as table:
        table.write("\n".join(lines) + "\n")


# About 50 originals and as many good ones, one at a time: 80 s on an idle 2-core machine.
@pytest.mark.timeout(600)
async def test_hostile_corpus_each_input_gets_its_code_and_the_worker_keeps_serving(
    images: Images, start_worker: StartWorker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="worker.delivery")
    worker = await start_worker(
        presets=DEFAULT_PRESETS, worker_render_processes=1, worker_concurrency=1
    )
    good = png_bytes(640, 480)
    cases = [*corpus(), *big_canvases()]
    measured = [await run_case(images, caplog, case, good, BUDGET.cpu_max_s) for case in cases]
    write_table(measured)

    assert [(m.case.name, m.status, m.code) for m in measured] == [
        (case.name, "failed" if case.code else "ready", case.code) for case in cases
    ]
    for result in measured:
        check(result)
    assert worker.count("picforge_worker_images_processed_total") == len(cases) + sum(
        1 for case in cases if case.code is None
    )


async def test_hostile_render_over_its_cpu_budget_fails_at_the_first_overrun(
    images: Images, start_worker: StartWorker, caplog: pytest.LogCaptureFixture, large_png: bytes
) -> None:
    """The CPU budget is the backstop for whatever quarantine does not foresee: here a 40 MP
    render to three 8192 px WebPs (several seconds of CPU) against a 1 s budget. Its child is
    killed at the budget and replaced, the image fails on its first delivery (no retry), and
    the next image renders."""
    caplog.set_level(logging.INFO, logger="worker.delivery")
    worker = await start_worker(
        presets=tuple(Preset(f"huge{q}", 8192, 8192, quality=q) for q in (90, 91, 92)),
        worker_render_processes=1,
        worker_concurrency=1,
        render_cpu_s=1.0,
        render_cpu_s_per_mp=0.0,
    )
    overrun = Case("40 MP PNG against a 1 s CPU budget", large_png, "image/png", CPU)

    measured = await run_case(images, caplog, overrun, png_bytes(640, 480), budget_s=10)

    check(measured)
    assert measured.cpu_s < 5  # killed at its 1 s budget (whole seconds), not rendered
    assert worker.count("picforge_worker_render_processes_replaced_total", reason="cpu") == 1
    assert worker.count("picforge_worker_images_failed_total", code=CPU) == 1
    assert worker.count(MESSAGES, outcome="retried") == 0
    write_table([measured])


async def test_hostile_render_over_its_memory_cap_fails_at_the_first_overrun(
    images: Images, start_worker: StartWorker, caplog: pytest.LogCaptureFixture, large_png: bytes
) -> None:
    """The address-space cap is the backstop for a cost the bytes-per-pixel table misjudges:
    here an 8192 px rendition of a 40 MP original in a render process capped at 400 MiB."""
    caplog.set_level(logging.INFO, logger="worker.delivery")
    worker = await start_worker(
        presets=(Preset("huge", 8192, 8192, quality=90),),
        worker_render_processes=1,
        worker_concurrency=1,
        render_memory_mb=400,
    )
    overrun = Case("40 MP PNG to 8192 px, 400 MiB cap", large_png, "image/png", MEMORY)

    measured = await run_case(images, caplog, overrun, png_bytes(640, 480), budget_s=60)

    assert (measured.status, measured.code) == ("failed", MEMORY)
    assert worker.count("picforge_worker_render_processes_replaced_total", reason="memory") == 1
    assert worker.count(MESSAGES, outcome="retried") == 0
    write_table([measured])


def test_hostile_client_messages_are_the_fixed_text_of_their_codes() -> None:
    for case in corpus():
        if case.code:
            message = client_message(case.code)
            assert message and len(message) < 200
            assert not re.search(r"Error|Exception|Traceback|http|SELECT|vips|\w+\.py", message)
