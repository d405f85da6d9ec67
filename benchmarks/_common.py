"""Shared by the benchmark scripts."""

from __future__ import annotations

import json
import os
from pathlib import Path


def write_result(result: dict, out: Path) -> dict:
    """Write a benchmark's JSON to ``out`` and echo it."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return result


def open_project(project: Path):
    """Torch threads from ``OMP_NUM_THREADS`` (every core when unset), then the Kedro project at ``project``:
    ``(catalog, params)`` of its context (load what the benchmark reads from the catalog)."""
    import torch
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", os.cpu_count() or 1)))
    bootstrap_project(project)
    with KedroSession.create(project_path=project) as session:
        context = session.load_context()
        return context.catalog, context.params
