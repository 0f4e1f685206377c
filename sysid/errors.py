"""Errors that describe bad input in words a user can act on."""


class SysidInputError(ValueError):
    """Bad input (file, array, config value or argument).

    The message is one line naming the problem and the fix; the command line
    prints it without a traceback and exits with code 2.
    """
