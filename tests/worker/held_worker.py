"""`python -m worker`, with every render held at its start until a file exists: how a test
catches a worker process mid-image however fast the machine renders (the `held_renders`
fixture does the same for a worker in the test's own process).

    python -m tests.worker.held_worker <release file>
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from tests.polling import eventually
from worker.main import main
from worker.pool import RenderPool

HELD_AT_MOST_S = 600  # longer than any test


def hold_renders_until(release: Path) -> None:
    render = RenderPool.run_measured  # what the handlers call

    async def held(pool: RenderPool, function: Any, /, *args: Any, **kwargs: Any) -> Any:
        await eventually(release.exists, timeout_s=HELD_AT_MOST_S, what="the release file")
        return await render(pool, function, *args, **kwargs)

    RenderPool.run_measured = held  # type: ignore[method-assign]


if __name__ == "__main__":
    hold_renders_until(Path(sys.argv[1]))
    main()
