"""MLflow helpers: metric names MLflow accepts."""

from __future__ import annotations

import math

import pytest
from mlflow.exceptions import MlflowException
from mlflow.utils.validation import _validate_metric_name

from gb_kedro.reporting.image_axis_probe import ORACLE
from gb_kedro.tracking import metric_names


def test_metric_names_are_ones_mlflow_accepts():
    """A representation named with brackets and an apostrophe (the axis probe's oracle row) or a precision@k
    would stop the run at MLflow's name check; their cleaned names pass it, values and other names unchanged."""
    raw = {
        f"image_axis_probe/{ORACLE}/lineage/cell_density": 0.62,
        "precision@15": 0.2,
        "eval/loss": 1,
        "gap": math.nan,
    }
    with pytest.raises(MlflowException):
        _validate_metric_name(next(iter(raw)))
    clean = metric_names(raw)
    for name in clean:
        _validate_metric_name(name)
    assert clean == {
        "image_axis_probe/oracle _generator_s cells_/lineage/cell_density": 0.62,
        "precision_at_15": 0.2,
        "eval/loss": 1.0,
    }
