"""How an image can fail: its code, and the only text a client reads for it.

Besides the rejection codes of `worker.validation` (`REJECTION_CODES`), an image can fail with
the codes in `FAILURE_CODES`. What a client reads in `error.message` is only ever the fixed text
of its code (`client_message`): what went wrong in detail (exception text, which may name hosts,
endpoints, SQL or classes) goes to the log, with the image id.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from worker import records
from worker.pool import LIMIT_CODES
from worker.renditions import REJECTION_CODES

ORIGINAL_MISSING: Final = "original_missing"
SIZE_EXCEEDS_DECLARATION: Final = "size_exceeds_declaration"
FAILURE_CODES: Final[Mapping[str, str]] = MappingProxyType(
    {
        LIMIT_CODES["cpu"]: "rendering took more CPU time than the image's budget allows",
        LIMIT_CODES["memory"]: "rendering needed more memory than the render process has",
        records.PROCESSING_FAILED: "processing kept failing for reasons outside the image; a "
        "reprocess tries again",
        ORIGINAL_MISSING: "the original is no longer in the uploads bucket",
        SIZE_EXCEEDS_DECLARATION: "the original is larger than the size declared for it",
    }
)
_UNKNOWN_FAILURE: Final = "the image could not be processed"
_CLIENT_MESSAGES: Final[Mapping[str, str]] = MappingProxyType(
    {str(code): text for code, text in REJECTION_CODES.items()} | dict(FAILURE_CODES)
)


def client_message(code: str) -> str:
    """The text a client reads for a failure code: ours, fixed, free of internals."""
    return _CLIENT_MESSAGES.get(code, _UNKNOWN_FAILURE)
