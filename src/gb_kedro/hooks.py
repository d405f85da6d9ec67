"""Project hooks."""

from __future__ import annotations

import logging

from kedro.framework.hooks import hook_impl

from gb_kedro.errors import find_input_error

logger = logging.getLogger(__name__)


class CleanInputErrorHooks:
    """Turn bad-input failures into one readable line in the log.

    Kedro re-raises the node's exception after the hooks run; this hook puts the message that matters
    (file and problem) at the end of the log where the user looks, instead of deep in a traceback.
    """

    @hook_impl
    def on_node_error(self, error: Exception, node, catalog, inputs, is_async, run_id):  # noqa: D401
        cause = find_input_error(error)
        if cause is not None:
            logger.error("Bad input in node '%s': %s", node.name, cause)
