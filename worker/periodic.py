"""What a periodic task of the worker (the abandoned-image look, the sweep, the reconcile) logs
when one period fails: it is tried again at the next."""

from __future__ import annotations

import logging

from botocore import exceptions as botocore_errors

from service.db import is_database_unavailable

# S3 or SQS out of reach: no connection, or one that timed out or closed mid-answer.
AWS_UNREACHABLE = (botocore_errors.ConnectionError, botocore_errors.HTTPClientError)


def log_failure(logger: logging.Logger, what: str, error: Exception) -> None:
    """Log that `what` failed: in one line when a dependency is out of reach, since an
    outage's tracebacks, one each period, would bury the log and say nothing more; with the
    traceback otherwise, as a bug to find."""
    if isinstance(error, AWS_UNREACHABLE):  # first: some of them are OSErrors too
        logger.warning("%s: S3 or SQS is unreachable (%r)", what, error)
    elif is_database_unavailable(error):
        logger.warning("%s: the database is unavailable (%r)", what, error)
    else:
        logger.error("%s", what, exc_info=error)
