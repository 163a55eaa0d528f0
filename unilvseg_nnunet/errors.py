"""The one error type for bad input: every ``unilvseg`` subcommand prints its message (which names
the file or argument at fault) and exits with status 2, without a traceback."""


class UnilvsegError(Exception):
    """Bad input; the message names the file or argument and what is wrong with it."""
