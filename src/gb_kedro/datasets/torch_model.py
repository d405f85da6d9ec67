"""Model weights + config in one file (``torch.save`` of a dict), written atomically."""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

from kedro.io import AbstractDataset

from gb_kedro.datasets.atomic import atomic_path
from gb_kedro.errors import InputDataError


class TorchModelDataset(AbstractDataset[dict, dict]):
    """A model bundle: ``{"config": dict, "state_dict": ..., ...}``; the model class rebuilds from the config."""

    def __init__(self, filepath: str, metadata: dict[str, Any] | None = None):
        self._filepath = Path(PurePosixPath(filepath))
        self.metadata = metadata

    def load(self) -> dict:
        import torch

        if not self._filepath.exists():
            raise InputDataError(self._filepath, "file not found")
        return torch.load(self._filepath, map_location="cpu", weights_only=False)

    def save(self, data: dict) -> None:
        import torch

        with atomic_path(self._filepath) as tmp:
            torch.save(data, tmp)

    def _exists(self) -> bool:
        return self._filepath.is_file()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath)}
