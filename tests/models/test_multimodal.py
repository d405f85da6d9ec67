import pytest
import torch

from gb_kedro.models.multimodal import CrossAttention, MultimodalModel
from gb_kedro.models.rna_mae import rna_mae
from gb_kedro.models.vit import vit


def _model(groups=(0, 0, 1, 2, 2, 2, 1, 3), fusion_depth=2):
    torch.manual_seed(0)
    rna = rna_mae(list(groups), "tiny", dim=32, num_heads=4, depth=1, proj_dim=16)
    img = vit("tiny", img_size=32, dim=48, depth=1, num_heads=3, num_classes=5)
    return MultimodalModel.from_encoders(rna, img, embed_dim=24, fusion_depth=fusion_depth, fusion_heads=4), rna, img


@pytest.mark.parametrize("groups", [(0, 0, 1, 2, 2, 2, 1, 3), (0, 1) * 10, tuple(range(5)) * 3])
def test_output_shapes(groups):
    model, _, _ = _model(groups)
    n, n_genes, g = 3, len(groups), max(groups) + 1
    images, rna = torch.rand(n, 3, 32, 32), torch.randn(n, n_genes)
    out = model(images, rna)
    assert out["z_img"].shape == out["z_rna"].shape == (n, 24)
    assert torch.allclose(out["z_img"].norm(dim=-1), torch.ones(n), atol=1e-5)
    assert out["image_tokens"].shape == (n, 1 + 4, 48)
    assert out["rna_tokens"].shape == out["fused"].shape == (n, 1 + g, 32)
    assert out["itm_logits"].shape == (n, 2) and out["recon"].shape == (n, n_genes)
    masked = model(images, rna, torch.zeros(n, dtype=torch.long))
    assert masked["fused"].shape == (n, g, 32)  # one group token removed


def test_pretrained_encoders_are_loaded():
    model, rna, img = _model()
    x = torch.randn(2, 8)
    assert torch.allclose(model.rna_encoder.forward_features(x)[0], rna.eval().forward_features(x)[0], atol=1e-6)
    images = torch.rand(2, 3, 32, 32)
    assert torch.allclose(model.wsi_encoder.forward_features(images), img.eval().forward_features(images), atol=1e-6)
    fresh = MultimodalModel.from_config(model.config_dict())
    assert not torch.allclose(fresh.rna_encoder.forward_features(x)[0], rna.forward_features(x)[0])


def test_explicit_attention_matches_sdpa_and_keeps_maps():
    torch.manual_seed(1)
    attn = CrossAttention(32, 4)
    x, ctx = torch.randn(2, 5, 32), torch.randn(2, 9, 32, requires_grad=True)
    fast = attn(x, ctx)
    attn.save_attention = True
    slow = attn(x, ctx)
    assert torch.allclose(fast, slow, atol=1e-5)
    assert attn.attention_map.shape == (2, 4, 5, 9)
    assert torch.allclose(attn.attention_map.sum(-1), torch.ones(2, 4, 5), atol=1e-5)
    slow.sum().backward()
    assert attn.attention_map.grad is not None and attn.attention_map.grad.shape == (2, 4, 5, 9)


def test_whole_model_same_output_on_both_attention_paths():
    model, _, _ = _model()
    model.eval()
    images, rna = torch.rand(2, 3, 32, 32), torch.randn(2, 8)
    fast = model.match_score(images, rna)
    model.set_save_attention(True)
    slow = model.match_score(images, rna)
    assert torch.allclose(fast, slow, atol=1e-5)
    assert all(a.attention_map.shape == (2, 4, 1 + 4, 1 + 4) for a in model.fusion_attention)
