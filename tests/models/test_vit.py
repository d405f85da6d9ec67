import pytest
import torch

from gb_kedro.models.vit import VisionTransformer, vit


@pytest.mark.parametrize(("img", "tokens"), [(128, 64), (256, 256)])
def test_shapes(img, tokens):
    model = vit("tiny", img_size=img, num_classes=5)
    out = model(torch.rand(2, 3, img, img))
    assert out["cls"].shape == (2, 96) and out["tokens"].shape == (2, tokens, 96) and model.head.weight.shape == (5, 96)
    feats = model.forward_features(torch.rand(1, 3, img, img))
    assert feats.shape == (1, tokens + 1, 96)
    torch.testing.assert_close(model.forward_head(feats), feats[:, 0])


def test_small_preset_is_vit_s16():
    config = vit("small", img_size=256).config
    assert (config.dim, config.depth, config.num_heads, config.patch_size, config.num_patches) == (384, 12, 6, 16, 256)


def test_gradient_checkpointing_gives_the_same_gradients():
    torch.manual_seed(0)
    a = vit("tiny", img_size=64, depth=2)
    b = VisionTransformer.from_config({**a.config_dict(), "grad_checkpointing": True})
    b.load_state_dict(a.state_dict())
    x = torch.rand(2, 3, 64, 64)
    a(x)["cls"].sum().backward()
    b(x)["cls"].sum().backward()
    for (name, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters(), strict=True):
        torch.testing.assert_close(pa.grad, pb.grad, msg=name)
