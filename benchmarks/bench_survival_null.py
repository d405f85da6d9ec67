"""Benchmark: the false-positive rate of the survival tests on null data (survival unrelated to the clusters).

Mice of one lineage share its tumour: their survival is correlated (a lineage effect, as real xenografts have).
Per scenario, ``--draws`` cohorts are simulated (lineages x mice, log-normal survival with a lineage effect and a
mouse effect, every death observed), the lineages split at random into ``k`` clusters that have nothing to do
with survival (as k-means on an RNA embedding unrelated to survival would), and two tests run at alpha 0.05:

* the log-rank test that counts every mouse as an independent animal (what the project reported before);
* the project's test (:func:`gb_kedro.reporting.survival.lineage_permutation_test`): the same statistic, its
  p-value by permuting the clusters across lineages (RNA clusters) or whole lineages' survival between lineages
  of the same size (image clusters, one per mouse, mostly the lineage's).

A valid test rejects in about 5 % of null draws::

    python benchmarks/bench_survival_null.py --out benchmarks/results/bench_survival_null.json   # ~11 min
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from _common import write_result  # benchmarks/ is on sys.path when a script of it runs

SCENARIOS = {  # name: (lineages, mice per lineage, clusters)
    "real-file example: 8 lineages x 3 mice": (8, 3, 3),
    "demo: 12 lineages x 4 mice": (12, 4, 3),
    "paper: 51 lineages x 3 mice": (51, 3, 3),
}


def simulate(rng, lineages: int, mice: int, k: int, lineage_sd: float, mouse_sd: float, mouse_level: bool):
    lineage = np.repeat(np.arange(lineages), mice)
    effect = rng.normal(0.0, lineage_sd, lineages)
    days = np.round(30.0 * np.exp(effect[lineage] + rng.normal(0.0, mouse_sd, lineage.size))) + 1
    cluster = rng.permutation(np.arange(lineages) % k)[lineage]
    if mouse_level:  # image clusters: mostly the lineage's, a fifth of the mice elsewhere
        moved = rng.random(lineage.size) < 0.2
        cluster = np.where(moved, rng.integers(0, k, lineage.size), cluster)
    return days, np.ones(lineage.size, bool), cluster, lineage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--permutations", type=int, default=999)
    parser.add_argument("--lineage-sd", type=float, default=0.5, help="sd of the lineage effect on log survival")
    parser.add_argument("--mouse-sd", type=float, default=0.2, help="sd of the mouse effect on log survival")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/bench_survival_null.json"))
    args = parser.parse_args()

    from gb_kedro.reporting.survival import lineage_permutation_test, log_rank

    rng = np.random.default_rng(args.seed)
    result = {"alpha": 0.05, "draws": args.draws, "permutations": args.permutations, "lineage_sd": args.lineage_sd}
    result["mouse_sd"], result["scenarios"] = args.mouse_sd, {}
    for name, (lineages, mice, k) in SCENARIOS.items():
        for level in ("lineage-level clusters (RNA)", "mouse-level clusters (image)"):
            start = time.perf_counter()
            ours, naive = [], []
            for _ in range(args.draws):
                data = simulate(rng, lineages, mice, k, args.lineage_sd, args.mouse_sd, level.startswith("mouse"))
                ours.append(lineage_permutation_test(*data, args.permutations, rng)[1])
                naive.append(log_rank(*data[:3])[1])
            ours, naive = np.array(ours), np.array(naive)
            result["scenarios"][f"{name}, {level}"] = {
                "false_positive_rate_lineage_permutation": round(float((ours <= 0.05).mean()), 4),
                "false_positive_rate_mice_as_independent": round(float((naive <= 0.05).mean()), 4),
                "seconds": round(time.perf_counter() - start, 1),
            }
    write_result(result, args.out)


if __name__ == "__main__":
    main()
