"""Can a run tell two Table 1 rows apart? Deep rows against the pixel-morphometry row, paired by slide.

Needs a finished default run (Table 1 written; ``data/07_model_output/retrieval_predictions_<row>.parquet``)::

    python benchmarks/paired_rows.py --rows ppi_no_recon chromosome_no_recon frozen_encoders \
        --out benchmarks/results/paired_rows.json

The morphometry row is refitted by its node's own function (``multimodal.feature_retrieval``: same features,
same ridge map fit on the training pairs, same candidates) to get its per-patch answers, which Table 1 keeps
only as accuracies. Per held-out set of seen lineages (held-out patches, unseen mice) and per deep row: both accuracies, their difference, and a
bootstrap over slides that resamples the SAME slides for both rows (patches of one slide are not independent,
and both rows answer on the same patches): the 95 % interval of the difference and the share of resamples in
which the deep row is at least as accurate; plus the per-slide accuracies.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from _common import write_result  # benchmarks/ is on sys.path when a script of it runs


def morphometry_answers(catalog, params) -> pd.DataFrame:
    """The morphometry row's per-patch lineage answers on every held-out patch (its node's own fit and retrieval)."""
    from gb_kedro.multimodal import PairedCohort, feature_retrieval
    from gb_kedro.slides.morphometry import FEATURES

    values = catalog.load("morphometry_features")[list(FEATURES)].to_numpy(np.float64)
    data = PairedCohort(
        catalog.load("patch_index"), None, catalog.load("cohort_features"), catalog.load("cohort_samples")
    )
    sim, _, samples, _, test = feature_retrieval(
        values, data, params["morphometry_baseline"]["table1_row"]["ridge_log10_alphas"]
    )
    out = test.reset_index(drop=True)[["slide_id", "x", "y", "lineage_id", "held_out"]].copy()
    out["correct"] = samples["lineage_id"].to_numpy()[sim.argmax(1)] == out["lineage_id"].to_numpy()
    return out


def paired(deep: pd.DataFrame, base: pd.DataFrame, n_boot: int, seed: int) -> dict:
    """Accuracies, difference and slide-paired bootstrap of ``deep`` minus ``base`` (same patches)."""
    per = pd.DataFrame(
        {
            "deep_hits": deep.groupby("slide_id")["correct"].sum(),
            "base_hits": base.groupby("slide_id")["correct"].sum(),
            "patches": base.groupby("slide_id").size(),
        }
    )
    hits = per.to_numpy(float)
    draws = np.random.default_rng(seed).integers(0, len(per), size=(n_boot, len(per)))
    sums = hits[draws].sum(axis=1)  # [n_boot, 3]
    diff = (sums[:, 0] - sums[:, 1]) / sums[:, 2]
    deep_acc, base_acc = hits[:, 0].sum() / hits[:, 2].sum(), hits[:, 1].sum() / hits[:, 2].sum()
    return {
        "slides": len(per),
        "patches": int(hits[:, 2].sum()),
        "deep_accuracy": round(float(deep_acc), 4),
        "morphometry_accuracy": round(float(base_acc), 4),
        "difference": round(float(deep_acc - base_acc), 4),
        "difference_ci95": [round(float(q), 4) for q in np.quantile(diff, [0.025, 0.975])],
        "share_deep_at_least_as_accurate": round(float((diff >= 0).mean()), 4),
        "per_slide": {
            slide: {"deep": round(r.deep_hits / r.patches, 3), "morphometry": round(r.base_hits / r.patches, 3)}
            for slide, r in per.iterrows()
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, default=Path.cwd())
    parser.add_argument("--rows", nargs="+", default=["ppi_no_recon"], help="deep Table 1 rows (their names)")
    parser.add_argument("--n-boot", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/paired_rows.json"))
    args = parser.parse_args()

    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(args.project)
    with KedroSession.create(project_path=args.project) as session:
        context = session.load_context()
        catalog, params = context.catalog, context.params
        base = morphometry_answers(catalog, params)
        deep_rows = {row: catalog.load(f"{row}.retrieval_predictions") for row in args.rows}
    key = ["slide_id", "x", "y"]
    result: dict = {"project": str(args.project.resolve()), "n_boot": args.n_boot, "rows": {}}
    for row, predictions in deep_rows.items():
        deep = predictions.assign(correct=predictions["predicted_lineage"] == predictions["lineage_id"])
        result["rows"][row] = {}
        for held in ("patch", "mouse"):
            b = base[base["held_out"] == held]
            d = deep[deep["held_out"] == held].set_index(key).loc[pd.MultiIndex.from_frame(b[key])].reset_index()
            if len(b):
                result["rows"][row][held] = paired(d, b, args.n_boot, args.seed)
    write_result(result, args.out)


if __name__ == "__main__":
    main()
