"""Model weights + config in one file (``torch.save`` of a dict), written atomically."""

from __future__ import annotations

from gb_kedro.datasets.atomic import LocalFileDataset, atomic_path


class TorchModelDataset(LocalFileDataset):
    """A model bundle: ``{"config": dict, "state_dict": ..., ...}``; the model class rebuilds from the config."""

    def load(self) -> dict:
        import torch

        return torch.load(self._require_file(), map_location="cpu", weights_only=False)

    def save(self, data: dict) -> None:
        import torch

        with atomic_path(self._filepath) as tmp:
            torch.save(data, tmp)
