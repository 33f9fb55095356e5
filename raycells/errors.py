"""The one exception type the library raises for bad input.

Its message names the file, the problem and the fix; the CLI prints it and exits with status 2.
"""


class RaycellsError(Exception):
    """Bad input or a request the library cannot carry out; the message says what to do."""


class RayUnavailable(RaycellsError):
    """Ray could not be started or joined; finished work is kept and the command can go on."""
