"""Can a run tell two Table 1 rows apart? Every row against a reference row, paired by slide.

Needs a finished default run (every row's ``data/07_model_output/retrieval_predictions_<row>.parquet``)::

    python benchmarks/paired_rows.py --reference morphometry_classifier --out benchmarks/results/paired_rows.json

The pipeline writes the same comparison against ``multimodal.evaluation.paired_reference`` as ``table1_paired``;
this script picks any reference and adds the per-slide accuracies. Per held-out set and row: both accuracies,
their difference, and a bootstrap over slides that resamples the SAME slides for both rows (patches of one slide
are not independent, and both rows answer on the same patches): the 95 % interval of the difference and the share
of resamples in which the row is at least as accurate (:func:`gb_kedro.evaluation.paired_rows`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from _common import write_result  # benchmarks/ is on sys.path when a script of it runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, default=Path.cwd())
    parser.add_argument("--reference", default="morphometry_classifier", help="the Table 1 row compared against")
    parser.add_argument("--n-boot", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/paired_rows.json"))
    args = parser.parse_args()

    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    from gb_kedro.config import BASELINE_ROWS
    from gb_kedro.evaluation import paired_rows
    from gb_kedro.pipeline_registry import pipeline_shape

    bootstrap_project(args.project)
    with KedroSession.create(project_path=args.project) as session:
        catalog = session.load_context().catalog
        shape = pipeline_shape()
        rows = [*shape.rows, *(f"{e}_adapter" for e in shape.patch_encoders), *BASELINE_ROWS]
        predictions = {row: catalog.load(f"{row}.retrieval_predictions") for row in rows}
    table = paired_rows(predictions, args.reference, args.n_boot, args.seed)
    per_slide = {}
    for row, frame in predictions.items():
        hits = frame.assign(correct=frame["predicted_lineage"] == frame["lineage_id"])
        per_slide[row] = hits.groupby(["held_out", "slide_id"])["correct"].mean().round(3).unstack(0).to_dict()
    result = {
        "project": str(args.project.resolve()),
        "reference": args.reference,
        "n_boot": args.n_boot,
        "rows": table.round(4).to_dict(orient="records"),
        "per_slide_accuracy": per_slide,
    }
    write_result(result, args.out)


if __name__ == "__main__":
    main()
