"""The run's time profile: node wall times, and epochs / seconds per epoch / samples per second of the trainings."""

from __future__ import annotations

import json
import time

import pandas as pd
from kedro.framework.hooks.manager import _create_hook_manager
from kedro.io import AbstractDataset, DataCatalog
from kedro.pipeline import Pipeline, node
from kedro.runner import SequentialRunner

from gb_kedro import profiling
from gb_kedro.hooks import ProfileHooks


def test_a_profile_times_nodes_and_reads_the_training_histories():
    profile = profiling.begin("demo")
    assert profiling.current() is profile
    profile.start("split")
    time.sleep(0.01)
    profile.stop("split", {"tcga_split": pd.DataFrame({"x": [1]})})
    history = pd.DataFrame({"epoch": [0, 1], "time/epoch_s": [2.0, 4.0], "time/samples_per_s": [100.0, 50.0]})
    profile.start("train_wsi_encoder")
    profile.stop("train_wsi_encoder", {"wsi_encoder": object(), "wsi_training_history": history})
    table = profile.table()
    assert table["node"].tolist() == ["split", "train_wsi_encoder"] or table["seconds"].is_monotonic_decreasing
    train = table.set_index("node").loc["train_wsi_encoder"]
    assert (train["epochs"], train["epoch_seconds"], train["samples_per_s"]) == (2, 3.0, 75.0)
    assert table.set_index("node").loc["split", "seconds"] >= 0.01 and pd.isna(
        table.set_index("node").loc["split", "epochs"]
    )
    profile.saving("split")  # a lazily written output does its work while it is saved: the node's time has it
    time.sleep(0.02)
    profile.saved("split")
    split = profile.table().set_index("node").loc["split"]
    assert split["save_seconds"] >= 0.02 and split["seconds"] >= 0.03
    document = json.loads(json.dumps(profile.to_dict()))
    assert document["pipelines"] == "demo" and len(document["nodes"]) == 2 and document["machine"]["cpus"] >= 1


def test_every_run_writes_its_time_profile(tiny_project):
    """The default run's report shows its profile (every node but the report); ``timings.json`` is the profile of
    the project's last run of whole pipelines (other tests rerun pipelines of the tiny project, a failing one
    included: its profile holds the nodes it ran)."""
    html = (tiny_project / "data" / "08_reporting" / "report.html").read_text()
    section = html[html.index("Time profile of this run</h2>") :]
    row = section[section.index("<td>train_wsi_encoder</td>") :].split("</tr>")[0]
    assert "<td>40</td>" in row  # its epochs, from the training history
    assert "ppi.train_rna_encoder" in section and "in the" in section and "training nodes" in section
    document = json.loads((tiny_project / "data" / "08_reporting" / "timings.json").read_text())
    assert document["nodes"] and document["node_seconds"] <= document["wall_seconds"]
    assert {"node", "seconds", "save_seconds", "epochs", "epoch_seconds", "samples_per_s"} == set(document["nodes"][0])


class _Kept(AbstractDataset):
    """A dataset in memory that loads None until something is saved (Kedro's MemoryDataset refuses to load then)."""

    def __init__(self):
        self.data = None

    def _save(self, data) -> None:
        self.data = data

    def _load(self):
        return self.data

    def _describe(self) -> dict:
        return {}


class _SlowToSave(_Kept):
    """A dataset whose save does the work (as the synthetic slides render while they are saved)."""

    def _save(self, data) -> None:
        time.sleep(0.2)
        super()._save(data)


def test_the_hooks_count_saving_a_nodes_outputs_in_its_time():
    manager = _create_hook_manager()
    manager.register(ProfileHooks())
    catalog = DataCatalog({"rendered": _SlowToSave()})
    profiling.begin("test")
    SequentialRunner().run(Pipeline([node(lambda: 1, None, "rendered", name="render")]), catalog, manager)
    render = profiling.current().table().set_index("node").loc["render"]
    assert 0.2 <= render["save_seconds"] <= render["seconds"] < 0.2 + 1.0


def _run_with(run_params: dict) -> DataCatalog:
    hooks = ProfileHooks()
    catalog = DataCatalog({"timings": _Kept(), "timings_partial": _Kept()})
    hooks.before_pipeline_run(run_params, None, catalog)
    hooks.before_node_run(node(lambda: 1, None, "x", name="step"), catalog, {}, False, "run")
    hooks.after_node_run(node(lambda: 1, None, "x", name="step"), catalog, {}, {"x": 1}, False, "run")
    hooks.after_pipeline_run(run_params, {}, None, catalog)
    return catalog


def test_a_run_of_part_of_the_pipelines_keeps_the_whole_runs_profile():
    """``kedro run`` writes ``timings``; ``--nodes`` / ``--from-nodes`` / ``--tags`` ... write ``timings_partial``
    (naming the selection), so the last whole run's profile is not overwritten by a rerun of a few nodes."""
    whole = _run_with({"pipeline_names": ["__default__"], "node_names": [], "tags": None, "from_nodes": []})
    assert whole.load("timings")["selection"] == {} and whole.load("timings_partial") is None
    assert [n["node"] for n in whole.load("timings")["nodes"]] == ["step"]
    for option, value in (("node_names", ["step"]), ("from_nodes", ["step"]), ("tags", ["t"]), ("to_outputs", ["x"])):
        part = _run_with({"pipeline_names": ["__default__"], option: value})
        assert part.load("timings") is None, option
        assert part.load("timings_partial")["selection"] == {option: value}, option
    assert profiling.selection_of({"only_missing_outputs": True, "namespaces": None}) == {"only_missing_outputs": True}
