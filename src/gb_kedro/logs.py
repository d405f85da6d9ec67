"""Quiet, readable logs (applied by :class:`gb_kedro.hooks.QuietLogsHooks` when a session starts).

* On a terminal: Kedro's rich handler, progress bars. Elsewhere (a log file, CI): one plain line per record,
  never wrapped, and no progress bars (``tqdm(disable=None)`` turns them off when stderr is not a terminal).
* Per-dataset "Loading data from / Saving data to" lines and Kedro's "Completed node" lines (the "Completed
  n out of N tasks" line says the same) are dropped; MLflow's pickle warning is shown once.
* Dependency warnings that a user can do nothing about are filtered at start-up, each named below.
"""

from __future__ import annotations

import logging
import sys
import warnings

WARNING_FILTERS = [
    # omegaconf deprecates register_new_resolver(); Kedro's OmegaConfigLoader and kedro-mlflow still call it.
    (r"register_new_resolver\(\) is deprecated", UserWarning),
    # MLflow asks for type hints on PythonModel.predict; the project logs torch and sklearn flavours, not pyfunc models.
    (r".*Add type hints to the `predict` method", UserWarning),
    # Kedro warns about '.' in dataset names; ours are namespaces by design (ppi.rna_encoder, ppi_no_recon.multimodal_model).
    (r"One or more dataset names contain '\.'", UserWarning),
]


# Start-up chatter of dependencies, on stderr: MLflow creating or migrating its SQLite tables (alembic).
QUIET_LOGGERS = ("mlflow.store.db.utils", "alembic.runtime.migration")


def filter_dependency_warnings() -> None:
    for message, category in WARNING_FILTERS:
        warnings.filterwarnings("ignore", message=message, category=category)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


class _Drop(logging.Filter):
    """Drop records whose message template starts with one of ``prefixes``."""

    def __init__(self, *prefixes: str):
        super().__init__()
        self.prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefixes)


class _Once(logging.Filter):
    """Let each distinct message through once."""

    def __init__(self):
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message in self.seen:
            return False
        self.seen.add(message)
        return True


class _OnceContaining(logging.Filter):
    """Let through only the first record whose message contains ``text`` (kedro-mlflow says "was closed because
    of an error" once per open run -- the parent and every nested one -- after a failure)."""

    def __init__(self, text: str):
        super().__init__()
        self.text, self.seen = text, False

    def filter(self, record: logging.LogRecord) -> bool:
        if self.text not in record.getMessage():
            return True
        if self.seen:
            return False
        self.seen = True
        return True


def configure() -> None:
    filter_dependency_warnings()
    mlflow_hook = logging.getLogger("kedro_mlflow.framework.hooks.mlflow_hook")
    if not any(isinstance(f, _OnceContaining) for f in mlflow_hook.filters):
        mlflow_hook.addFilter(_OnceContaining("was closed because of an error"))
    logging.getLogger("kedro.io.data_catalog").setLevel(logging.WARNING)
    for name in ("mlflow.pytorch", "mlflow.sklearn", "mlflow.utils.requirements_utils"):  # once per run, not per model
        model_logger = logging.getLogger(name)
        if not any(isinstance(f, _Once) for f in model_logger.filters):
            model_logger.addFilter(_Once())
    if not sys.stdout.isatty():
        _plain_root_handler()
    for handler in logging.getLogger().handlers:  # Kedro's runners log through their own module loggers
        if not any(isinstance(f, _Drop) for f in handler.filters):
            # Kedro's own node-failure line: the project's hook logs it instead, except for bad input, which the
            # command line prints once, as its one-line error
            handler.addFilter(_Drop("Completed node", "Node %s failed with error"))


def _plain_root_handler() -> None:
    """Replace rich handlers of the root logger by one plain, unwrapped line per record on stdout."""
    root = logging.getLogger()
    if any(getattr(h, "_gb_kedro_plain", False) for h in root.handlers):
        return
    for handler in list(root.handlers):
        if type(handler).__name__ == "RichHandler":
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(message)s  [%(name)s]", datefmt="%H:%M:%S"))
    handler._gb_kedro_plain = True  # type: ignore[attr-defined]
    root.addHandler(handler)
