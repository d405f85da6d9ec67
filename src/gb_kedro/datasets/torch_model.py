"""Trained models: class + config + weights + what the model is, in one file; ``load`` returns the built
``nn.Module`` (eval mode), ready to use."""

from __future__ import annotations

import importlib
from typing import Any

from gb_kedro.datasets.atomic import LocalFileDataset, atomic_path
from gb_kedro.errors import InputDataError


class TorchModelDataset(LocalFileDataset):
    """A :class:`gb_kedro.models.layers.ConfigurableModel` (any class with ``from_config`` and
    ``config_dict``) saved as ``{"class", "config", "state_dict", "meta"}`` (``torch.save``, atomic).

    ``load`` imports the class, rebuilds it from its config, loads the weights, puts it in eval mode and
    sets ``model.meta`` (lineages, genes, Table 1 row, MLflow run ID: whatever the training node attached
    with ``describe``). Every parameter comes back with ``requires_grad=True``.
    """

    def load(self):
        import torch

        bundle = torch.load(self._require_file(), map_location="cpu", weights_only=False)
        if not isinstance(bundle, dict) or "class" not in bundle:
            raise InputDataError(self._filepath, "not a gb-kedro model file (no model class): retrain the model")
        module, _, name = bundle["class"].rpartition(".")
        model = getattr(importlib.import_module(module), name).from_config(bundle["config"])
        model.load_state_dict(bundle["state_dict"])
        model.meta = dict(bundle.get("meta", {}))
        return model.eval()

    def save(self, data) -> None:
        import torch

        cls = type(data)
        bundle = {
            "class": f"{cls.__module__}.{cls.__qualname__}",
            "config": data.config_dict(),
            "state_dict": data.state_dict(),
            "meta": dict(getattr(data, "meta", {})),
        }
        with atomic_path(self._filepath) as tmp:
            torch.save(bundle, tmp)

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath)}
