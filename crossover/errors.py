"""The one exception type that user-facing code raises for bad input; the CLI prints it as a single line."""


class CrossoverError(Exception):
    """A problem the user can fix (a bad name, file, field or value); the message says what and how."""


class CheckpointError(CrossoverError):
    """A checkpoint (or the settings file beside it) that is incomplete or cannot be read; `path` is what failed,
    so a caller can tell its own run's damage (redo the run) from a damaged input (report it)."""

    def __init__(self, path, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
