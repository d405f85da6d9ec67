"""Project settings (https://docs.kedro.org/en/stable/configure/configuration_basics/)."""

from kedro.config import OmegaConfigLoader

from gb_kedro.hooks import CleanInputErrorHooks, InputChecksHooks, ProfileHooks, QuietLogsHooks
from gb_kedro.logs import filter_dependency_warnings

filter_dependency_warnings()  # before Kedro builds the config loader (its resolver warnings)
# pluggy calls the last registered first: at the end of a run the profile is written, then "Done: ..." is the last line
HOOKS = (QuietLogsHooks(), InputChecksHooks(), ProfileHooks(), CleanInputErrorHooks())

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    # Environments override single keys of a parameter tree instead of replacing it whole.
    "merge_strategy": {"parameters": "soft"},
    "config_patterns": {
        "mlflow": ["mlflow*", "mlflow*/**"],
    },
}
