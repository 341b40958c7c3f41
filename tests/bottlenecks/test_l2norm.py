"""L2-norm bottleneck: unit vectors per frame, in encode and decode."""

import torch

from audioae.bottlenecks.l2norm import L2Norm


def test_every_frame_has_unit_norm_and_decode_renormalises():
    b = L2Norm(latent_dim=4)
    x = torch.randn(2, 4, 9, requires_grad=True)
    out = b.encode(x)
    assert out.latents.shape == x.shape and out.losses == {}
    torch.testing.assert_close(out.latents.norm(dim=1), torch.ones(2, 9))
    torch.testing.assert_close(out.latents, x / x.norm(dim=1, keepdim=True))
    torch.testing.assert_close(b.decode(3 * out.latents), out.latents)
    (out.latents * torch.randn_like(out.latents)).sum().backward()
    assert x.grad.abs().sum() > 0
