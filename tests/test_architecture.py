"""The house rules, checked on the source: layers only point down, pipelines meet only in the catalog (and read
only their own parameters, or the shared entries of parameters.yml), only the stages that train import the
training loop, reporting trains nothing, thin nodes, and no code default for a value that ``conf/base`` defines."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.helpers import base_parameters

SRC = Path(__file__).resolve().parents[1] / "src" / "gb_kedro"

# Higher layers may import lower ones (and their own layer), never the other way round.
LAYERS = [
    (
        1,
        (
            "gb_kedro.models",
            "gb_kedro.losses",
            "gb_kedro.training",
            "gb_kedro.distributed",
            "gb_kedro.profiling",
            "gb_kedro.config",
            "gb_kedro.errors",
            "gb_kedro.tracking",
            "gb_kedro.provenance",
        ),
    ),
    (2, ("gb_kedro.datasets",)),
    (
        3,
        (
            "gb_kedro.expression",
            "gb_kedro.genes",
            "gb_kedro.graph",
            "gb_kedro.slides",
            "gb_kedro.baselines",
            "gb_kedro.synthetic",
        ),
    ),
    (
        4,
        (
            "gb_kedro.rna_encoding",
            "gb_kedro.wsi_encoding",
            "gb_kedro.multimodal",
            "gb_kedro.evaluation",
            "gb_kedro.patch_features",
            "gb_kedro.reporting",
        ),
    ),
    (
        5,
        (
            "gb_kedro.pipelines",
            "gb_kedro.pipeline_registry",
            "gb_kedro.settings",
            "gb_kedro.hooks",
            "gb_kedro.cli",
            "gb_kedro.__main__",
            "gb_kedro.logs",
        ),
    ),
]


def layer_of(module: str) -> int:
    for level, prefixes in LAYERS:
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return level
    raise AssertionError(f"{module} has no layer: add it to LAYERS")


def modules() -> dict[str, Path]:
    out = {}
    for path in SRC.rglob("*.py"):
        parts = path.relative_to(SRC.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def imports(path: Path) -> list[tuple[str, int]]:
    """Every ``gb_kedro`` import of a file (module level and inside functions), with its line."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("gb_kedro"):
            found += [(node.module, node.lineno)]
        elif isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names if a.name.startswith("gb_kedro")]
    return found


def test_layers_only_point_down():
    wrong = []
    for module, path in modules().items():
        if module == "gb_kedro":
            continue
        for target, line in imports(path):
            if target != "gb_kedro" and layer_of(target) > layer_of(module):
                wrong.append(
                    f"{path.relative_to(SRC.parent)}:{line} {module} (layer {layer_of(module)}) imports {target} (layer {layer_of(target)})"
                )
    assert not wrong, "\n".join(wrong)


def test_pipelines_meet_only_in_the_catalog():
    wrong = []
    for module, path in modules().items():
        if not module.startswith("gb_kedro.pipelines."):
            continue
        own = ".".join(module.split(".")[:3])
        for target, line in imports(path):
            if target.startswith("gb_kedro.pipelines.") and not target.startswith(own):
                wrong.append(f"{path.relative_to(SRC.parent)}:{line} imports {target}")
    assert not wrong, "\n".join(wrong)


def test_the_generator_is_read_by_its_pipeline_only():
    wrong = [
        f"{module} imports {target}"
        for module, path in modules().items()
        if not module.startswith(("gb_kedro.synthetic", "gb_kedro.pipelines.synthetic_cohort"))
        for target, _ in imports(path)
        if target.startswith("gb_kedro.synthetic")
    ]
    assert not wrong, "\n".join(wrong)


def test_no_import_cycle_between_modules():
    # ``from package import submodule`` inside that package (Kedro's pipeline layout) is not a cycle.
    graph = {
        m: {t for t, _ in imports(p) if t in modules() and not m.startswith(t + ".")} for m, p in modules().items()
    }
    state: dict[str, int] = {}

    def visit(m, stack):
        state[m] = 1
        for t in graph.get(m, ()):
            if state.get(t) == 1:
                pytest.fail("import cycle: " + " -> ".join([*stack, m, t]))
            if t not in state:
                visit(t, [*stack, m])
        state[m] = 2

    for m in graph:
        if m not in state:
            visit(m, [])


# The modules that train a model: the training loop is theirs to call (and the loop's own package); domain code
# (slides, datasets, provenance ...), evaluation, reporting and the pipelines never import it.
TRAINING_STAGES = ("gb_kedro.training", "gb_kedro.rna_encoding", "gb_kedro.wsi_encoding", "gb_kedro.multimodal")


def test_only_the_training_stages_import_the_training_loop():
    wrong = [
        f"{path.relative_to(SRC.parent)}:{line} {module} imports {target}"
        for module, path in modules().items()
        if not module.startswith(TRAINING_STAGES)
        for target, line in imports(path)
        if target == "gb_kedro.training" or target.startswith("gb_kedro.training.")
    ]
    assert not wrong, "\n".join(wrong)


def _imported_names(path: Path) -> list[tuple[str, str, int]]:
    return [
        (node.module, alias.name, node.lineno)
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("gb_kedro")
        for alias in node.names
    ]


def test_reporting_reads_models_and_never_trains():
    """No reporting module (nor the reporting pipeline) imports a training function: the models it reads are
    trained by the multimodal pipeline (Table 1 rows, seed and permutation-null retrainings)."""
    wrong = [
        f"{path.relative_to(SRC.parent)}:{line} imports {module}.{name}"
        for mod, path in modules().items()
        if mod.startswith(("gb_kedro.reporting", "gb_kedro.pipelines.reporting"))
        for module, name, line in _imported_names(path)
        if module.startswith("gb_kedro.training") or name.startswith(("train", "fit")) or name in ("fit", "fit_pairs")
    ]
    assert not wrong, "\n".join(wrong)


def _owners() -> dict[str, str]:
    """Top-level parameter key -> the pipeline whose parameter file defines it (``shared``: parameters.yml)."""
    import yaml

    owners = {}
    for path in sorted((SRC.parents[1] / "conf" / "base").glob("parameters*.yml")):
        owner = path.stem.removeprefix("parameters").removeprefix("_") or "shared"
        for key in yaml.safe_load(path.read_text()) or {}:
            owners[key] = owner
    return owners


def test_pipelines_read_only_their_own_parameters_and_the_shared_entries():
    """A node reads ``params:<key>`` only when its pipeline's parameter file defines ``<key>`` or ``<key>`` is a
    documented shared entry of ``conf/base/parameters.yml`` (``split``, ``patches``, ``lineage_classifier``)."""
    import os

    from kedro.framework.startup import bootstrap_project

    from gb_kedro.pipeline_registry import register_pipelines

    cwd = os.getcwd()
    os.chdir(SRC.parents[1])
    try:
        bootstrap_project(SRC.parents[1])
        pipelines = register_pipelines()
    finally:
        os.chdir(cwd)
    owners = _owners()
    assert {k for k, v in owners.items() if v == "shared"} == {"split", "patches", "lineage_classifier"}
    wrong = []
    for name in ("synthetic_cohort", "data_engineering", "rna_encoding", "wsi_encoding", "multimodal", "reporting"):
        for node in pipelines[name].nodes:
            for dataset in node.inputs:
                if dataset.startswith("params:"):
                    key = dataset.removeprefix("params:").split(".")[0]
                    if owners.get(key) not in (name, "shared"):
                        wrong.append(f"{name}: node {node.name} reads {dataset} (defined by {owners.get(key)})")
    assert not wrong, "\n".join(wrong)


def test_nodes_are_thin():
    long = []
    for path in (SRC / "pipelines").rglob("nodes.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.col_offset == 0:
                n = node.end_lineno - node.lineno + 1
                if n > 40:
                    long.append(f"{path.relative_to(SRC.parent)}:{node.lineno} {node.name}: {n} lines")
    assert not long, "\n".join(long)


def _keys(tree, out: set[str]) -> set[str]:
    if isinstance(tree, dict):
        for k, v in tree.items():
            out.add(str(k))
            _keys(v, out)
    return out


def test_no_code_default_for_a_value_conf_base_defines():
    """``options.get("lr", 0.001)`` repeats (and may contradict) conf/base: typed configs read it instead."""
    keys = _keys(base_parameters(), set())
    wrong = []
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "get"
                and len(node.args) == 2
                and isinstance(node.args[0], ast.Constant)
                and node.args[0].value in keys
                and isinstance(node.args[1], ast.Constant)
            ):
                wrong.append(
                    f"{path.relative_to(SRC.parent)}:{node.lineno} .get({node.args[0].value!r}, {node.args[1].value!r})"
                )
    assert not wrong, "\n".join(wrong)
