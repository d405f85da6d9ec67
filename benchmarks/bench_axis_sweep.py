"""Benchmark: does a per-axis figure on unseen lineages survive another training seed and another lineage split?

On ``paper`` each unseen-lineage figure of the image axis probe rests on 10 lineages and one training run: its
95 % interval is about +-0.2 wide, and the training seed alone moved chromatin from 0.25 to 0.79. This benchmark
trains the WSI encoder once per (lineage split seed, training seed) cell on a finished run's patches and scores
every cell with the report's probe (``reporting.image_axis_probe``: the encoder's embedding and, for reference, the
40 morphometry features), then pools the cells: per representation, held-out set and axis the accuracy over every
cell's answers with a 95 % interval that resamples lineages (unseen lineages; slides for unseen mice) ACROSS cells
-- a lineage held out in two splits is one unit -- and the mean, lowest and highest cell
(:func:`gb_kedro.reporting.image_axis_probe.pooled`). Per cell also the encoder's 1-NN lineage accuracy on unseen
mice and its margin over the strong baseline (logistic regression on the 40 morphometry features), slide-paired
(``wsi_encoding.evaluate_embeddings``). Embedded cohort only (the probe reads the planted truth).

Needs a finished run (any preset; the docs quote ``paper``)::

    python benchmarks/bench_axis_sweep.py --split-seeds 0 1 2 --seeds 0 1 2 \\
        --out benchmarks/results/bench_axis_sweep.json

Each cell is the pipeline's own stage with ``split.seed`` and ``wsi_encoding.seed`` replaced (every other
parameter the run's): the split drawn again over the run's patch index (``slides.split.assign_split``), the encoder
trained from scratch on that split's training patches (its own checkpoint folder), the patches embedded with the
configured test-time views. A cell's embeddings are kept in ``--work`` with the parameters and patch index that made
them: a second call reuses the cells whose record matches and retrains the others, so an interrupted sweep
resumes (on ``paper`` about 12 min per cell on 2 CPU cores). ``--embeddings FILE ...`` pools ``wsi_embeddings``
files of finished runs instead (each carries its split; ``kedro run --nodes build_patch_index,train_wsi_encoder,
embed_wsi_patches --params split.seed=S,wsi_encoding.seed=W`` writes one), rows checked against the run's patches.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from _common import open_project, write_result  # benchmarks/ is on sys.path when a script of it runs

SPLIT_COLUMNS = ["split", "held_out"]


def _plain(value) -> object:
    """``value`` as JSON would give it back (for comparing a cell's record with the parameters of now)."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def cell_index(patch_index: pd.DataFrame, split: dict, split_seed: int) -> pd.DataFrame:
    """The run's patch index with its evaluation split drawn again with ``split.seed = split_seed``: the index
    ``build_patch_index`` writes for that seed (same rows, same order)."""
    from gb_kedro.config import SplitConfig
    from gb_kedro.slides.split import assign_split

    base = patch_index.drop(columns=SPLIT_COLUMNS).reset_index(drop=True)
    index, _ = assign_split(base, SplitConfig.from_dict({**split, "seed": split_seed}))
    return index


def train_cell(
    index, pixels, morphometry, params: dict, split_seed: int, seed: int, work: Path, name: str
) -> pd.DataFrame:
    """The WSI encoder's embeddings for one cell (``index``: the run's patches split with ``split_seed``): read from
    ``work`` when its record says the same parameters and patch index made them, else trained from scratch and
    written there (the old record removed first; each file written to a temporary path, then renamed)."""
    from gb_kedro import provenance
    from gb_kedro import wsi_encoding as wsi
    from gb_kedro.config import PatchesConfig, WSIEncodingConfig

    options = {**params["wsi_encoding"], "seed": seed}
    record = _plain(
        {
            "split": {**params["split"], "seed": split_seed},
            "wsi_encoding": options,
            "patches": params["patches"],
            "patch_index": provenance.index_fingerprint(index),
        }
    )
    embeddings_path, record_path = work / f"{name}.parquet", work / f"{name}.json"
    if embeddings_path.exists() and record_path.exists() and json.loads(record_path.read_text()) == record:
        print(f"{name}: reusing {embeddings_path}", flush=True)
        return pd.read_parquet(embeddings_path)
    if embeddings_path.exists():
        print(f"{name}: {embeddings_path} was made with other parameters or patches: training again", flush=True)
    views = PatchesConfig.from_dict(params["patches"])
    pixels.require(index, views.geometry[0], "bench_axis_sweep")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"bench_axis_{name}_") as tmp:
        cfg = WSIEncodingConfig.from_dict({**options, "checkpoint_dir": tmp})
        model, _ = wsi.train_encoder(index, pixels, cfg, views, morphometry)
        embeddings = wsi.embed_patches(model, index, pixels, cfg, views)
    print(f"{name}: trained and embedded in {time.perf_counter() - start:.0f} s", flush=True)
    work.mkdir(parents=True, exist_ok=True)
    record_path.unlink(missing_ok=True)  # never an old record beside new embeddings
    partial = embeddings_path.with_name(embeddings_path.name + ".partial")
    embeddings.to_parquet(partial)
    partial.replace(embeddings_path)
    partial = record_path.with_name(record_path.name + ".partial")
    partial.write_text(json.dumps(record, indent=2) + "\n")
    partial.replace(record_path)
    return embeddings


def read_cell(path: Path, patch_index: pd.DataFrame) -> pd.DataFrame:
    """A finished run's ``wsi_embeddings`` file, after checking its patches are the run's, in order."""
    from gb_kedro.errors import InputDataError
    from gb_kedro.provenance import require_rows

    if not path.is_file():
        raise InputDataError(path, "no such file")
    try:
        embeddings = pd.read_parquet(path)
    except (OSError, ValueError) as exc:  # not a parquet file (pyarrow's errors are ValueErrors)
        raise InputDataError(path, f"cannot read it as a parquet table ({exc})") from None
    missing = [c for c in ["slide_id", "x", "y", "lineage_id", *SPLIT_COLUMNS] if c not in embeddings]
    if missing:
        raise InputDataError(path, f"not a wsi_embeddings file (no {', '.join(missing)} column)")
    require_rows(embeddings, patch_index, str(path), "bench_axis_sweep")
    return embeddings


def score_cell(
    embeddings, colour, morphometry, truth, params: dict, seed: int | None, probe_cfg
) -> tuple[dict, list[dict]]:
    """One cell: its unseen-mouse figures beside the strong baseline, and the probe's answers. ``seed``: the cell's
    ``wsi_encoding.seed``, which the run's evaluation also seeds its paired bootstrap with (None: the configured
    one, for ``--embeddings`` files, which do not record it)."""
    from gb_kedro import wsi_encoding as wsi
    from gb_kedro.config import LineageClassifierConfig, SplitConfig, WSIEncodingConfig
    from gb_kedro.reporting import image_axis_probe as iap
    from gb_kedro.slides.morphometry import ALL_FEATURES, numbered_columns

    metrics, _ = wsi.evaluate_embeddings(
        embeddings,
        colour,
        SplitConfig.from_dict(params["split"]),
        WSIEncodingConfig.from_dict({**params["wsi_encoding"], **({} if seed is None else {"seed": seed})}),
        morphometry,
        LineageClassifierConfig.from_dict(params["lineage_classifier"]),
    )
    keep = (
        "mouse/model_accuracy",
        "mouse/model_classifier_accuracy",
        "mouse/morphometry_classifier_accuracy",
        "mouse/model_minus_morphometry_classifier",
        "mouse/model_minus_morphometry_classifier_ci_low",
        "mouse/model_minus_morphometry_classifier_ci_high",
        "patch/model_accuracy",
        "patch/morphometry_classifier_accuracy",
    )
    index = embeddings[["slide_id", "x", "y", "lineage_id", *SPLIT_COLUMNS]].reset_index(drop=True)
    reps = {
        "wsi_encoder": embeddings[numbered_columns(embeddings, "e")].to_numpy(float),
        "morphometry": morphometry[list(ALL_FEATURES)].to_numpy(float),
    }
    answers = iap.answers(reps, index, truth, probe_cfg)
    figures = {k: round(float(metrics[k]), 4) for k in keep if k in metrics}
    figures["held_out_lineages"] = sorted(index.loc[index["held_out"] == "lineage", "lineage_id"].unique().tolist())
    figures["probe_unseen_lineages"] = {
        f"{a['representation']}/{a['held_out']}/{a['axis']}": round(float(np.mean(a["correct"])), 4)
        for a in answers
        if a["held_out"] in ("lineage", "lineage_slides")
    }
    return figures, answers


def pooled_json(table: pd.DataFrame) -> dict:
    """The pooled table as representation -> held-out set -> axis -> figures."""
    out: dict = {}
    for row in table.itertuples(index=False):
        out.setdefault(row.representation, {}).setdefault(row.held_out, {})[row.axis] = {
            "accuracy": round(row.accuracy, 4),
            "ci": [round(row.ci_low, 4), round(row.ci_high, 4)],
            "bootstrap_unit": row.bootstrap_unit,
            "units": int(row.units),
            "cells": int(row.runs),
            "cell_mean": round(row.run_mean, 4),
            "cell_range": [round(row.run_min, 4), round(row.run_max, 4)],
            "chance": round(row.chance, 4),
        }
    return out


def cells(args, patch_index, pixels, morphometry, params: dict):
    """(name, training seed, embeddings) of every cell in turn: the ``--embeddings`` files (seed unknown: None),
    else each split seed x training seed (trained, or read back from ``--work``, when its turn comes)."""
    if args.embeddings:
        for path in args.embeddings:
            yield str(path), None, read_cell(path, patch_index)
        return
    for s in args.split_seeds:
        index = cell_index(patch_index, params["split"], s)
        for w in args.seeds:
            name = f"split{s}_seed{w}"
            yield name, w, train_cell(index, pixels, morphometry, params, s, w, args.work, name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, default=Path.cwd())
    parser.add_argument("--split-seeds", type=int, nargs="+", default=[0, 1, 2], help="split.seed of each split")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="wsi_encoding.seed of each training")
    parser.add_argument("--embeddings", type=Path, nargs="+", default=None, help="pool these files, train nothing")
    parser.add_argument("--work", type=Path, default=Path("benchmarks/results/axis_sweep"), help="the cells' files")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/bench_axis_sweep.json"))
    args = parser.parse_args()
    try:
        sweep(args)
    except Exception as exc:  # the project's error path: bad input is one line (Kedro may wrap a dataset's error)
        from gb_kedro.errors import find_input_error

        cause = find_input_error(exc)
        if cause is None:
            raise
        sys.exit(f"Error: bad input: {cause}")


def sweep(args: argparse.Namespace) -> None:
    """Score (training where needed) every cell of ``args`` and write the pooled JSON after each."""
    catalog, params = open_project(args.project)

    from gb_kedro.config import ReportingConfig
    from gb_kedro.errors import InputDataError
    from gb_kedro.reporting import image_axis_probe as iap

    patch_index = catalog.load("patch_index").reset_index(drop=True)
    truth = catalog.load("truth_lineages")
    morphometry = catalog.load("morphometry_features")
    colour = catalog.load("colour_features")
    pixels = None if args.embeddings else catalog.load("patch_pixels")
    if truth.empty:
        raise InputDataError("truth_lineages", "empty: the axis sweep reads the embedded cohort's planted truth")
    reporting = ReportingConfig.from_dict(params["reporting"])
    probe_cfg = reporting.image_axis_probe
    result = {
        "project": str(args.project.resolve()),
        "cells": {},
        "probe": {"inverse_penalty": probe_cfg.inverse_penalty, "n_boot": probe_cfg.n_boot, "seed": reporting.seed},
        "threads": torch.get_num_threads(),
    }
    answers = []
    for name, seed, embeddings in cells(args, patch_index, pixels, morphometry, params):
        figures, cell_answers = score_cell(embeddings, colour, morphometry, truth, params, seed, probe_cfg)
        answers.append(cell_answers)
        result["cells"][name] = figures
        result["pooled"] = pooled_json(iap.pooled(answers, probe_cfg, reporting.seed))
        mice = [c["mouse/model_accuracy"] for c in result["cells"].values() if "mouse/model_accuracy" in c]
        result["unseen_mice_1nn_mean"] = round(float(np.mean(mice)), 4) if mice else None
        write_result(result, args.out)


if __name__ == "__main__":
    main()
