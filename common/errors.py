"""The project's error classes.

UserError is the one base class of errors a user can fix (a missing or malformed file,
a config that contradicts a finished stage, a bad argument): entry points print its
message, which names the file or value and the fix, and exit with status 2 without a
traceback. Anything else is a bug and keeps its traceback.
"""


class UserError(Exception):
    """An error in the user's input, files or config, with a message that says how to fix it."""


class ArtifactError(UserError, ValueError):
    """A run-directory file that is missing, malformed, or made with another config.

    Library code raises it with a message naming the file, what was expected and
    the command that makes it.
    """


class StageError(UserError, RuntimeError):
    """A stage cannot run: bad input, missing prerequisite or contradicting config."""
