"""User mistakes and warnings.

The CLI prints a `UserError` as a single line and exits with code 2; every
other exception is a bug and keeps its traceback. Warnings go through the
`kerasllm` logger, which the CLI prints as `warning: ...` lines.
"""

import logging

logger = logging.getLogger("kerasllm")


def warn(message: str) -> None:
    logger.warning(message)


class UserError(Exception):
    """A mistake the user can fix: bad config, missing file, impossible size."""
