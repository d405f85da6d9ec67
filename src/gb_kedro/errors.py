"""One exception type for bad user input, so that every reader stops with a message naming the file."""

from __future__ import annotations

from pathlib import Path

from kedro.io import DatasetError


class InputDataError(DatasetError, ValueError):
    """Bad input data: ``source`` names the file (or catalog entry), ``problem`` says what is wrong.

    A ``DatasetError`` so that Kedro passes it through a dataset's ``load`` unwrapped.
    """

    def __init__(self, source: str | Path | None, problem: str):
        self.source = str(source) if source is not None else "<input>"
        self.problem = problem
        super().__init__(f"{self.source}: {problem}")

    def __reduce__(self):
        """Pickled by its two arguments: raised in a worker process (a slide among many), it comes back whole."""
        return type(self), (self.source, self.problem)


def source_of(frame, default: str) -> str:
    """The file a DataFrame was read from (stamped by the project's datasets), else ``default``."""
    return str(getattr(frame, "attrs", {}).get("source", default))


def find_input_error(error: BaseException | None) -> InputDataError | None:
    """The :class:`InputDataError` in ``error``'s cause/context chain (Kedro may wrap it), or None."""
    while error is not None and not isinstance(error, InputDataError):
        error = error.__cause__ or error.__context__
    return error


def listed(items, limit: int = 5) -> str:
    """``items`` for a message, the first ``limit`` of them and how many were left out: ``a, b, c and 4 more``."""
    items = [str(i) for i in items]
    head = ", ".join(items[:limit])
    return f"{head} and {len(items) - limit} more" if len(items) > limit else head
