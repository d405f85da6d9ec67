"""Benchmark: the whole default pipeline of a preset, as ``kedro run`` runs it, and where its time goes.

Runs ``kedro run --params synthetic_cohort.preset=<preset>`` (plus ``--params`` you add) in a throw-away copy of the
project (its conf and your installed package; the data written there, not in your checkout), then prints the run's
time profile (``data/08_reporting/timings.json``, written by every run): the wall time, each node's seconds and
share, and for the training nodes their epochs, seconds per epoch and samples per second::

    python benchmarks/bench_pipeline.py --preset demo --out benchmarks/results/bench_pipeline_demo.json
    python benchmarks/bench_pipeline.py --preset paper --out benchmarks/results/bench_pipeline_paper.json
    python benchmarks/bench_pipeline.py --project . --reuse     # the profile of the last run in this project

Run it alone on the machine: a second process on the same cores slows both (quote times with their load).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import write_result  # benchmarks/ is on sys.path when a script of it runs

ROOT = Path(__file__).resolve().parents[1]


def run(project: Path, preset: str, params: str) -> float:
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "true", "MPLBACKEND": "Agg"}
    kedro = Path(sys.executable).with_name("kedro")
    extra = f"synthetic_cohort.preset={preset}" + (f",{params}" if params else "")
    start = time.perf_counter()
    with open(project / "kedro-run.log", "w") as log:
        done = subprocess.run([str(kedro), "run", "--params", extra], cwd=project, env=env, stdout=log, stderr=log)
    if done.returncode:
        raise SystemExit(f"kedro run failed (exit {done.returncode}); log: {project / 'kedro-run.log'}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="demo")
    parser.add_argument("--params", default="", help="more run-time parameters (key=value,key=value)")
    parser.add_argument("--project", type=Path, default=None, help="run in this project (default: a fresh copy)")
    parser.add_argument("--reuse", action="store_true", help="do not run: read the project's last time profile")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/bench_pipeline.json"))
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench_pipeline_") as tmp:
        project = args.project
        if project is None:
            project = Path(tmp)
            shutil.copy(ROOT / "pyproject.toml", project / "pyproject.toml")
            shutil.copytree(ROOT / "conf", project / "conf", ignore=shutil.ignore_patterns("local"))
            (project / "conf" / "local").mkdir()
        command_s = None if args.reuse else round(run(project, args.preset, args.params), 1)
        profile = json.loads((project / "data" / "08_reporting" / "timings.json").read_text())
    nodes = sorted(profile["nodes"], key=lambda n: -n["seconds"])
    total = sum(n["seconds"] for n in nodes)
    print(f"{'node':48s} {'s':>8s} {'share':>6s} {'epochs':>6s} {'s/epoch':>8s} {'samples/s':>10s}")
    for n in nodes:
        print(
            f"{n['node'][:48]:48s} {n['seconds']:8.1f} {n['seconds'] / total:6.1%} {n['epochs'] or '':>6} "
            f"{n['epoch_seconds'] or '':>8} {n['samples_per_s'] or '':>10}"
        )
    write_result(
        {
            "preset": args.preset,
            "params": args.params,
            "command_seconds": command_s,
            **{k: v for k, v in profile.items() if k != "nodes"},
            "training_seconds": round(sum(n["seconds"] for n in nodes if n["epochs"]), 1),
            "nodes": nodes,
        },
        args.out,
    )


if __name__ == "__main__":
    main()
