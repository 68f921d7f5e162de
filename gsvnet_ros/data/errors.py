"""Named errors of the dataset loaders."""
from __future__ import annotations

from pathlib import Path

__all__ = ["DatasetLayoutError"]


class DatasetLayoutError(FileNotFoundError):
    """A dataset file or folder is missing or is not what the layout says; `.path` is the one expected."""

    def __init__(self, message: str, path: str | Path | None = None) -> None:
        super().__init__(message)
        self.path = None if path is None else Path(path)
