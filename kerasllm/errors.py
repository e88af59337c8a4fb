"""The one exception type for user mistakes.

The CLI prints a `UserError` as a single line and exits with code 2; every
other exception is a bug and keeps its traceback.
"""


class UserError(Exception):
    """A mistake the user can fix: bad config, missing file, impossible size."""
