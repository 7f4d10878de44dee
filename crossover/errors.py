"""The one exception type that user-facing code raises for bad input; the CLI prints it as a single line."""


class CrossoverError(Exception):
    """A problem the user can fix (a bad name, file, field or value); the message says what and how."""
