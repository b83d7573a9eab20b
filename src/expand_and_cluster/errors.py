"""The one exception type for problems the user can fix (bad input, bad files, bad settings).

The CLI turns it into a one-line message and exit code 2; anything else is a bug and keeps
its traceback.
"""


class InputError(ValueError):
    """Bad input: the message names the problem and how to fix it."""
