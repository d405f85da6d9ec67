import pickle

import numpy as np
import pandas as pd
import torch

from gb_kedro.slides.dataset import PatchDataset
from gb_kedro.slides.tiling import open_slide
from gb_kedro.synthetic.slides import SlideSpec, make_scene, write_pyramid_tiff


def test_reads_the_patches_lazily_with_workers(tmp_path):
    code = {
        "nucleus_size": 1,
        "elongation": 0,
        "arrangement": 1,
        "chromatin_texture": -1,
        "cell_density": 0,
        "invasion": -1,
    }
    path = tmp_path / "s.tif"
    write_pyramid_tiff(path, make_scene(SlideSpec("S1", "M1", "L1", "P1", code, seed=1, width=1024, height=1024)))
    index = pd.DataFrame(
        {
            "slide_id": "S1",
            "x": [0, 256, 512, 768],
            "y": [256, 256, 512, 512],
            "level": 0,
            "size": 256,
            "lineage_id": ["A", "B", "A", "B"],
        }
    )
    data = PatchDataset(index, {"S1": str(path)}, label_column="lineage_id")
    image, label = data[1]
    assert image.shape == (3, 256, 256) and image.dtype == torch.float32 and label == 1
    expected = np.asarray(open_slide(path).read_region((256, 256), 0, (256, 256)).convert("RGB"))
    np.testing.assert_allclose(image.permute(1, 2, 0).numpy() * 255, expected, atol=1e-3)
    assert "_handles" in pickle.loads(pickle.dumps(data)).__dict__ and not pickle.loads(pickle.dumps(data))._handles
    small = PatchDataset(index, {"S1": str(path)}, output_size=128)
    loader = torch.utils.data.DataLoader(small, batch_size=2, num_workers=2)
    batches = list(loader)
    assert len(batches) == 2 and batches[0][0].shape == (2, 3, 128, 128)
