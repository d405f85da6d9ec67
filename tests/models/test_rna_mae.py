import pytest
import torch

from gb_kedro.models.rna_mae import RNAMaskedAutoencoder, rna_mae


@pytest.mark.parametrize(
    "group_of_gene", [[0] * 5 + [1] * 7 + [2] * 3, [2, 0, 1, 1, 0, 2, 3, 3, 3, 0], [0] * 40 + [1] * 2]
)
def test_shapes_for_several_group_layouts(group_of_gene):
    model = rna_mae(group_of_gene, dim=32, depth=1, num_heads=4, proj_dim=8)
    g = max(group_of_gene) + 1
    x = torch.randn(5, len(group_of_gene))
    out = model(x)
    assert out["cls"].shape == (5, 32) and out["z"].shape == (5, 8)
    assert out["tokens"].shape == (5, g - 1, 32)  # one token masked
    assert out["recon"].shape == x.shape and out["mask_idx"].shape == (5,)
    cls, tokens = model.forward_features(x)
    assert cls.shape == (5, 32) and tokens.shape == (5, g, 32)
    torch.testing.assert_close(out["z"].norm(dim=-1), torch.ones(5))


def test_exactly_one_group_token_is_masked_per_sample():
    groups = [0] * 4 + [1] * 6 + [2] * 5 + [3] * 3
    model = rna_mae(groups, dim=16, depth=1, num_heads=2, proj_dim=4).eval()
    x = torch.randn(8, len(groups))
    mask_idx = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    latent, ids_keep = model.forward_encoder(x, mask_idx)
    assert latent.shape == (8, 1 + 3, 16)
    for i in range(8):
        kept = set(ids_keep[i].tolist())
        assert kept == set(range(4)) - {int(mask_idx[i])}
    # The masked group's genes cannot influence the encoder output...
    x2 = x.clone()
    x2[:, torch.tensor(groups) == 2] += 5.0
    for i in (2, 6):
        torch.testing.assert_close(model.forward_encoder(x2[i : i + 1], mask_idx[i : i + 1])[0], latent[i : i + 1])
    # ...and the masked-group loss covers exactly that group's genes.
    m = model.group_mask(mask_idx)
    assert (m.sum(1) == torch.tensor([4, 6, 5, 3] * 2)).all()


def test_random_masking_draws_one_group_per_sample():
    torch.manual_seed(0)
    idx = RNAMaskedAutoencoder.random_masking(1000, 7)
    assert idx.shape == (1000,) and idx.min() >= 0 and idx.max() <= 6 and len(set(idx.tolist())) == 7


def test_config_round_trip():
    model = rna_mae([0, 0, 1, 1, 1, 2], dim=16, depth=1, num_heads=2, proj_dim=4)
    again = RNAMaskedAutoencoder.from_config(model.config_dict())
    again.load_state_dict(model.state_dict())
    x = torch.randn(3, 6)
    torch.testing.assert_close(again.eval().forward_features(x)[0], model.eval().forward_features(x)[0])


def test_empty_group_is_rejected():
    with pytest.raises(ValueError, match="empty gene group"):
        rna_mae([0, 0, 2, 2])
