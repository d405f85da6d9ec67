import pandas as pd
import pytest

from gb_kedro.datasets import JSONDataset, TableDataset, TextDataset
from gb_kedro.errors import InputDataError


def test_missing_file_is_named(tmp_path):
    with pytest.raises(Exception, match=r"sheet\.tsv: file not found"):
        TableDataset(str(tmp_path / "sheet.tsv")).load()


def test_required_columns(tmp_path):
    path = tmp_path / "sheet.tsv"
    path.write_text("sample\tpatient\nA\tP1\n")
    with pytest.raises(InputDataError, match=r"sheet\.tsv: missing required column\(s\) \['sample_id'\]"):
        TableDataset(str(path), required_columns=["sample_id"]).load()


@pytest.mark.parametrize("suffix", [".tsv", ".csv", ".parquet"])
def test_round_trip_and_source_stamp(tmp_path, suffix):
    frame = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    ds = TableDataset(str(tmp_path / f"t{suffix}"))
    ds.save(frame)
    loaded = ds.load()
    pd.testing.assert_frame_equal(loaded.reset_index(drop=True), frame)
    assert loaded.attrs["source"].endswith(f"t{suffix}")


def test_failed_save_keeps_the_good_file(tmp_path):
    path = tmp_path / "t.parquet"
    ds = TableDataset(str(path))
    ds.save(pd.DataFrame({"a": [1, 2]}))
    before = path.read_bytes()
    with pytest.raises(Exception):  # noqa: B017 (pyarrow's own error type; what matters is the file left intact)
        ds.save(pd.DataFrame({"a": [object(), object()]}))  # pyarrow cannot write this
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.parquet"]


def test_json_and_text(tmp_path):
    JSONDataset(str(tmp_path / "m.json")).save({"x": 1})
    assert JSONDataset(str(tmp_path / "m.json")).load() == {"x": 1}
    TextDataset(str(tmp_path / "s.gmt")).save("A\tdesc\tG1\n")
    assert TextDataset(str(tmp_path / "s.gmt")).load() == "A\tdesc\tG1\n"
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(Exception, match=r"bad\.json: not valid JSON"):
        JSONDataset(str(tmp_path / "bad.json")).load()


def test_previews_are_typed_for_kedro_viz(tmp_path):
    import inspect
    import json

    from gb_kedro.datasets import JSONDataset

    table = TableDataset(str(tmp_path / "t.tsv"))
    table.save(pd.DataFrame({"gene": ["A", "B", "C"], "score": [0.5, float("nan"), 2.0]}))
    preview = table.preview(nrows=2)
    # kedro-viz picks the preview kind from the return annotation's name
    assert str(inspect.signature(TableDataset.preview).return_annotation) == "TablePreview"
    assert preview == {"columns": ["gene", "score"], "data": [["A", 0.5], ["B", None]]}
    json.dumps(preview)  # what kedro-viz sends to the browser
    metrics = JSONDataset(str(tmp_path / "m.json"))
    metrics.save({"accuracy": 0.9})
    assert str(inspect.signature(JSONDataset.preview).return_annotation) == "JSONPreview"
    assert json.loads(metrics.preview()) == {"accuracy": 0.9}
