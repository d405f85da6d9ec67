import base64

from matplotlib.figure import Figure

from gb_kedro.datasets import FigureDataset


def _fig():
    fig = Figure(figsize=(2, 2))
    fig.add_subplot(1, 1, 1).plot([0, 1])
    return fig


def test_figure_saved_loaded_as_png_and_previewed(tmp_path):
    single = FigureDataset(filepath=str(tmp_path / "a.png"))
    single.save(_fig())
    png = single.load()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert base64.b64decode(single.preview()) == png
    folder = FigureDataset(filepath=str(tmp_path / "many"), overwrite=True)
    folder.save({"x.png": _fig(), "y.png": _fig()})
    loaded = folder.load()
    assert sorted(loaded) == ["x.png", "y.png"] and all(v[:4] == b"\x89PNG" for v in loaded.values())
    assert base64.b64decode(folder.preview()) == loaded["x.png"]
