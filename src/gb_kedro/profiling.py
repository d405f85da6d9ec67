"""The time profile of a run: every node's wall time (running it and saving its outputs: a lazily written dataset,
such as the synthetic slides, does its work while it is saved) and, for the training nodes, epochs, seconds per
epoch and samples per second (read from the per-epoch ``time/*`` columns that :func:`gb_kedro.training.fit` records in a
stage's history).

:class:`gb_kedro.hooks.ProfileHooks` fills the run's profile as nodes finish and writes it at the end
(``data/08_reporting/timings.json``, the catalog entry ``timings``, and the MLflow parent run; a run of part of the
pipelines -- ``--nodes``, ``--from-nodes``, ``--tags`` ... -- writes ``timings_partial.json`` instead, so the last
whole run's profile stays); the report's node reads the profile so far (:func:`current`: every node but the report
itself).
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

import pandas as pd


@dataclass
class NodeTime:
    """One node's wall time (``seconds``: running it and saving its outputs; ``save_seconds``: the saving part); for
    a training node, its epochs, mean seconds per epoch and training samples/s."""

    node: str
    seconds: float
    save_seconds: float = 0.0
    epochs: int | None = None
    epoch_seconds: float | None = None
    samples_per_s: float | None = None


@dataclass
class RunProfile:
    """The nodes of one run, in the order they finished."""

    pipelines: str
    selection: dict = field(default_factory=dict)  # the run's node filters (--nodes, --tags ...); {}: all of them
    started: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    nodes: list[NodeTime] = field(default_factory=list)
    _clock: dict[str, float] = field(default_factory=dict, repr=False)
    _begun: float = field(default_factory=time.perf_counter, repr=False)

    def start(self, node: str) -> None:
        self._clock[node] = time.perf_counter()

    def stop(self, node: str, outputs: dict | None = None) -> NodeTime:
        """The node's wall time; a history among its outputs (a table with ``time/epoch_s``) adds the epochs."""
        record = NodeTime(node, round(time.perf_counter() - self._clock.pop(node, time.perf_counter()), 3))
        for value in (outputs or {}).values():
            if isinstance(value, pd.DataFrame) and "time/epoch_s" in value.columns and len(value):
                record.epochs = int(len(value))
                record.epoch_seconds = round(float(value["time/epoch_s"].mean()), 3)
                record.samples_per_s = round(float(value["time/samples_per_s"].mean()), 1)
        self.nodes.append(record)
        return record

    def saving(self, node: str) -> None:
        """One of the node's outputs starts being saved (after :meth:`stop`)."""
        self._clock[f"save:{node}"] = time.perf_counter()

    def saved(self, node: str) -> None:
        """That output is saved: its time joins the node's wall time and its ``save_seconds``."""
        begun = self._clock.pop(f"save:{node}", None)
        record = next((n for n in reversed(self.nodes) if n.node == node), None)
        if begun is None or record is None:
            return
        spent = time.perf_counter() - begun
        record.seconds = round(record.seconds + spent, 3)
        record.save_seconds = round(record.save_seconds + spent, 3)

    def table(self) -> pd.DataFrame:
        """One row per node, longest first, with its share of the run."""
        frame = pd.DataFrame([asdict(n) for n in self.nodes], columns=list(NodeTime.__dataclass_fields__))
        frame["share"] = frame["seconds"] / max(frame["seconds"].sum(), 1e-9)
        return frame.sort_values("seconds", ascending=False, kind="stable").reset_index(drop=True)

    def to_dict(self) -> dict:
        import torch

        return {
            "pipelines": self.pipelines,
            "selection": self.selection,
            "started_utc": self.started,
            "wall_seconds": round(time.perf_counter() - self._begun, 1),
            "node_seconds": round(sum(n.seconds for n in self.nodes), 1),
            "machine": {
                "cpus": os.cpu_count(),
                "torch_threads": torch.get_num_threads(),
                "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
                "platform": platform.platform(),
            },
            "nodes": [asdict(n) for n in self.nodes],
        }


_CURRENT: list[RunProfile] = []


# The ``kedro run`` options that run part of the pipelines (Kedro's run_params keys).
SELECTING = (
    "node_names",
    "from_nodes",
    "to_nodes",
    "from_inputs",
    "to_outputs",
    "tags",
    "namespaces",
    "only_missing_outputs",
)


def selection_of(run_params: dict) -> dict:
    """The options of ``run_params`` that ran part of the pipelines (empty for whole pipelines)."""
    chosen = {key: run_params.get(key) for key in SELECTING}
    return {
        key: list(value) if isinstance(value, list | tuple | set) else value for key, value in chosen.items() if value
    }


def begin(pipelines: str, selection: dict | None = None) -> RunProfile:
    """A new profile for the run that starts now (the previous one is dropped); ``selection``: :func:`selection_of`."""
    _CURRENT[:] = [RunProfile(pipelines, selection or {})]
    return _CURRENT[0]


def current() -> RunProfile | None:
    """The profile of the run in progress (None outside ``kedro run``)."""
    return _CURRENT[0] if _CURRENT else None
