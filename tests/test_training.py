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


def test_lr_scale_trains_a_prefix_of_the_model_at_a_share_of_the_rate():
    """``lr_scale`` ({prefix: share}) puts those parameters in their own AdamW groups at that share of the rate
    (weight decay kept apart as before); after one step, an encoder weight at 0.1 has moved about a tenth as far
    as the head's (AdamW's first step is ~lr per weight)."""
    from gb_kedro.training import param_groups

    model = torch.nn.Sequential()
    model.add_module("encoder", torch.nn.Linear(4, 4))
    model.add_module("head", torch.nn.Linear(4, 1))
    groups = param_groups(model, weight_decay=0.05, lr=1e-2, lr_scale={"encoder.": 0.1})
    by_rate = {(g["lr"], g["weight_decay"]): len(g["params"]) for g in groups}
    assert by_rate == {(1e-2, 0.05): 1, (1e-2, 0.0): 1, (1e-3, 0.05): 1, (1e-3, 0.0): 1}
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.AdamW(groups, lr=1e-2)
    model(torch.randn(8, 4)).pow(2).mean().backward()
    optimizer.step()
    moved = {k: (v - before[k]).abs().mean().item() for k, v in model.state_dict().items()}
    assert moved["encoder.bias"] == pytest.approx(1e-3, rel=0.05) and moved["head.bias"] == pytest.approx(
        1e-2, rel=0.05
    )
    assert {g["lr"] for g in param_groups(model, 0.05, 1e-2)} == {1e-2}


def test_keep_returns_the_best_or_the_last_epochs_weights():
    """``keep: best`` gives back the lowest-validation-loss epoch's weights, ``keep: last`` the final ones.
    Training pulls a weight towards +1 while validation wants -1: validation is best after the first epoch."""

    def step(model, batch, device, gather=False):
        x, y = batch
        return {"loss": ((model(x.to(device)).squeeze(-1) - y.to(device)) ** 2).mean()}

    train = TensorDataset(torch.ones(16, 1), torch.ones(16))
    val = TensorDataset(torch.ones(4, 1), -torch.ones(4))
    kept = {}
    for keep in ("best", "last"):
        torch.manual_seed(0)
        model = torch.nn.Linear(1, 1, bias=False)
        torch.nn.init.zeros_(model.weight)
        seen = {}
        config = train_config(epochs=4, batch_size=4, lr=0.05, warmup_epochs=0, patience=0, keep=keep)
        result = fit(
            model, train, val, step, config, on_epoch=lambda e, m, w=model, s=seen: s.setdefault(e, w.weight.item())
        )
        kept[keep] = model.weight.item()
        assert result["best_epoch"] == 0
    assert kept["best"] == pytest.approx(seen[0]) and kept["last"] == pytest.approx(seen[3])
    assert kept["best"] < kept["last"]


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


def test_the_log_says_which_weights_a_stage_kept():
    from gb_kedro.training import kept_epoch

    history = [{}] * 30
    assert (
        kept_epoch({"history": history, "best_epoch": 17}, "best") == "kept the lowest validation loss, epoch 18 of 30"
    )
    assert kept_epoch({"history": history, "best_epoch": -1}, "best") == "no validation set: kept the last epoch (30)"
    assert kept_epoch({"history": history, "best_epoch": 12}, "last") == "kept the last epoch (30)"


def test_a_frozen_batch_norm_keeps_its_statistics_through_training():
    """Training mode leaves the batch norms of a frozen encoder in eval mode (running statistics untouched, the
    normalisation it was trained with); a trainable one learns its statistics as usual."""
    from gb_kedro.training import train_mode

    frozen, trained = torch.nn.BatchNorm1d(3), torch.nn.BatchNorm1d(3)
    frozen.requires_grad_(False)
    model = torch.nn.Sequential(frozen, trained)
    train_mode(model)
    assert model.training and not frozen.training and trained.training
    model(torch.randn(16, 3) * 5 + 2)
    assert torch.equal(frozen.running_mean, torch.zeros(3)) and not torch.equal(trained.running_mean, torch.zeros(3))
