import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import TensorDataset

from gb_kedro import rna_encoding as rna
from gb_kedro.datasets import TorchModelDataset
from gb_kedro.models.rna_mae import RNAMaskedAutoencoder, rna_mae
from gb_kedro.training import fit
from tests.helpers import train_config


@pytest.fixture(scope="module")
def cohort_data(tiny_cohort):
    """Log, z-scored TCGA counts of the tiny synthetic cohort and its planted modules as groups."""
    star = tiny_cohort["tcga_star"]
    genes = tiny_cohort["truth_genes"]
    coding = genes[(genes["gene_type"] == "protein_coding")]
    values = np.stack(
        [frame.set_index("gene_id").loc[coding["gene_id"], "tpm_unstranded"].to_numpy() for frame in star.values()]
    )
    x = np.log1p(values)
    x = ((x - x.mean(0)) / (x.std(0) + 1e-6)).astype(np.float32)
    groups = np.clip(coding["module"].to_numpy(), -1, None)
    groups = np.where(groups < 0, groups.max() + 1, groups)  # genes without PPI: their own group
    _, groups = np.unique(groups, return_inverse=True)
    return x, groups.tolist()


def _small_model(groups):
    torch.manual_seed(0)
    return rna_mae(groups, dim=32, depth=1, num_heads=4, proj_dim=16)


def test_contrastive_and_masked_group_reconstruction_fall(cohort_data):
    x, groups = cohort_data
    model = _small_model(groups)
    step = rna.make_step(temperature=0.2, recon_weight=1.0, contrastive_weight=1.0)
    data = TensorDataset(torch.from_numpy(x), torch.arange(len(x)))
    result = fit(model, data, None, step, train_config(epochs=25, batch_size=16, lr=2e-3, warmup_epochs=1, patience=0))
    first, last = result["history"][0], result["history"][-1]
    assert last["train/contrastive"] < 0.7 * first["train/contrastive"]
    assert last["train/recon_masked"] < 0.9 * first["train/recon_masked"]


def test_killed_and_resumed_run_ends_with_the_same_weights(cohort_data, tmp_path):
    x, groups = cohort_data
    step = rna.make_step(temperature=0.2, recon_weight=1.0, contrastive_weight=1.0)
    data = TensorDataset(torch.from_numpy(x[:32]), torch.arange(32))
    val = TensorDataset(torch.from_numpy(x[32:]), torch.arange(len(x) - 32))
    config = train_config(epochs=6, batch_size=8, lr=1e-3, warmup_epochs=1, patience=0)

    straight = _small_model(groups)
    fit(straight, data, val, step, config, checkpoint_dir=tmp_path / "a", fingerprint="f")

    class Killed(Exception):
        pass

    def kill_after_epoch_2(epoch, metrics):
        if epoch == 2:
            raise Killed

    interrupted = _small_model(groups)
    with pytest.raises(Killed):
        fit(
            interrupted,
            data,
            val,
            step,
            config,
            checkpoint_dir=tmp_path / "b",
            on_epoch=kill_after_epoch_2,
            fingerprint="f",
        )
    resumed = _small_model(groups)  # a fresh process would rebuild the model and call fit again
    result = fit(resumed, data, val, step, config, checkpoint_dir=tmp_path / "b", fingerprint="f")
    assert len(result["history"]) == 6
    for (name, a), (_, b) in zip(straight.state_dict().items(), resumed.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    # A checkpoint of another run (other fingerprint) is not resumed.
    other = _small_model(groups)
    fresh = fit(
        other, data, val, step, train_config(epochs=1, batch_size=8), checkpoint_dir=tmp_path / "b", fingerprint="g"
    )
    assert len(fresh["history"]) == 1


def test_save_load_round_trip_gives_identical_embeddings(cohort_data, tmp_path):
    x, groups = cohort_data
    model = _small_model(groups).eval()
    dataset = TorchModelDataset(str(tmp_path / "rna.pt"))
    dataset.save(model.describe(variant="ppi", genes=["g1"]))
    again = dataset.load()
    assert (
        isinstance(again, RNAMaskedAutoencoder)
        and not again.training
        and again.meta == {"variant": "ppi", "genes": ["g1"]}
    )
    np.testing.assert_array_equal(rna.embed(model, x, 64), rna.embed(again, x, 64))


def test_tcga_split_is_stratified():
    samples = pd.DataFrame({"sample_id": [f"s{i}" for i in range(40)], "primary_site": ["brain"] * 20 + ["lung"] * 20})
    split = rna.split_tcga(samples, 0.25, seed=0)
    assert split.groupby("primary_site")["split"].apply(lambda s: (s == "test").sum()).tolist() == [5, 5]
