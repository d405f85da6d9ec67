"""Model code: one module per model, shared transformer layers in :mod:`gb_kedro.models.layers`."""
