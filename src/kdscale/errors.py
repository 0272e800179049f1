"""The one exception type for problems the user can fix (bad params, bad files, no network)."""


class UserError(Exception):
    """An input problem. The message is one line that names what is wrong and the fix.

    The command-line entry point prints it without a traceback and exits with status 2.
    """
