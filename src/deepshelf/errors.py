"""User-facing errors: a mistake in input or configuration, reported as one line, never a traceback."""


class DeepshelfError(ValueError):
    """Bad input or configuration. The message names the file, row, field or parameter at fault.

    The CLI turns it into exit status 2 and the server into a 4xx answer.
    """
