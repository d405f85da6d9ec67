"""Shared by the benchmark scripts."""

from __future__ import annotations

import json
from pathlib import Path


def write_result(result: dict, out: Path) -> dict:
    """Write a benchmark's JSON to ``out`` and echo it."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return result
