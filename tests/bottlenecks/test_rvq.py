"""ResidualVQ bottlenecks: token layout, straight-through gradients, EMA codebooks, tokens."""

import math

import pytest
import torch

from audioae.bottlenecks.rvq import RVQ, RVQVAE, codebook_stats
from audioae.build import build_autoencoder
from conftest import compose_train


def _rvq(**kw) -> RVQ:
    return RVQ(
        **{"latent_dim": 4, "codebook_size": 16, "num_quantizers": 3, "kmeans_iters": 2, **kw}
    )


def test_codebook_stats_by_hand():
    codes = torch.tensor([[[0, 0, 1, 1], [3, 3, 3, -1]]])  # (B=1, Q=2, L=4), -1 = dropped
    stats = codebook_stats(codes, codebook_size=4)
    assert stats["usage/q0"].item() == 0.5
    assert stats["perplexity/q0"].item() == pytest.approx(2.0)
    assert stats["usage/q1"].item() == 0.25
    assert stats["perplexity/q1"].item() == pytest.approx(1.0)
    assert all(v.dim() == 0 for v in stats.values())


def direct_usage_and_perplexity(codes: torch.Tensor, codebook_size: int) -> tuple[float, float]:
    """By a direct count of one codebook's codes: used fraction, exp(entropy) of the histogram."""
    counts = [int((codes == k).sum()) for k in range(codebook_size)]
    total = sum(counts)
    entropy = -sum(c / total * math.log(c / total) for c in counts if c)
    return sum(c > 0 for c in counts) / codebook_size, math.exp(entropy)


def test_layout_losses_and_extras():
    torch.manual_seed(0)
    b = _rvq().train()
    out = b.encode(torch.randn(2, 4, 64))
    assert out.latents.shape == (2, 4, 64)
    codes = out.codes
    assert codes.shape == (2, 3, 64) and codes.dtype == torch.int64
    assert codes.min() >= 0 and codes.max() < 16
    assert set(out.losses) == {"vq/commitment_loss"} and out.losses["vq/commitment_loss"] > 0
    for i in range(3):
        usage, perplexity = direct_usage_and_perplexity(codes[:, i], 16)
        assert out.extras[f"usage/q{i}"].dim() == 0
        assert out.extras[f"usage/q{i}"].item() == pytest.approx(usage, abs=1e-6)
        assert out.extras[f"perplexity/q{i}"].item() == pytest.approx(perplexity, rel=1e-5)
        # k-means on these 128 frames spreads them over the codebook: 13.3-14.5 of 16 measured
        assert perplexity > 10
    assert (b.is_discrete, b.num_quantizers, b.codebook_size) == (True, 3, 16)


def test_straight_through_gradient_is_one_per_quantizer():
    b = _rvq().train()
    x = torch.randn(2, 4, 7, requires_grad=True)
    b.encode(x).latents.sum().backward()
    # each stage passes the gradient of its output to its (detached-residual) input unchanged
    torch.testing.assert_close(x.grad, torch.full_like(x, 3.0), rtol=0, atol=0)


def test_ema_updates_codebooks_in_training_but_not_for_tokens_or_eval():
    b = _rvq(kmeans_init=False).train()
    embed = b.quantizer.layers[0]._codebook.embed
    before = embed.clone()
    b.encode_tokens(torch.randn(2, 4, 7))
    torch.testing.assert_close(embed, before, rtol=0, atol=0)
    b.eval().encode(torch.randn(2, 4, 7))
    torch.testing.assert_close(embed, before, rtol=0, atol=0)
    b.train().encode(torch.randn(2, 4, 7))
    assert not torch.equal(embed, before)


def test_tokens_round_trip_in_eval_mode():
    b = _rvq()
    b.train().encode(torch.randn(2, 4, 32))  # k-means init and one EMA update
    b.eval()
    x = torch.randn(2, 4, 7)
    codes = b.encode_tokens(x)
    assert codes.shape == (2, 3, 7) and codes.dtype == torch.int64
    torch.testing.assert_close(codes, b.encode(x).codes, rtol=0, atol=0)
    torch.testing.assert_close(b.decode_tokens(codes), b.encode(x).latents, rtol=0, atol=1e-6)


def test_autoencoder_tokens_equal_decode_of_encode():
    cfg = compose_train("experiment=smoke", "bottleneck=rvq", "bottleneck.kmeans_iters=2")
    model = build_autoencoder(cfg)
    audio = torch.randn(2, cfg.in_channels, cfg.sample_size)
    model.train()(audio)  # initialise the codebooks
    model.eval()
    with torch.no_grad():
        codes = model.encode_tokens(audio)
        assert codes.shape == (2, 8, cfg.sample_size // model.downsampling_ratio)
        want = model.decode(model.encode(audio).latents)
        torch.testing.assert_close(model.decode_tokens(codes), want, rtol=0, atol=1e-6)


def test_continuous_autoencoder_refuses_tokens():
    model = build_autoencoder(compose_train("experiment=smoke", "bottleneck=vae"))
    with pytest.raises(ValueError, match="discrete"):
        model.encode_tokens(torch.randn(1, 2, 2048))
    with pytest.raises(ValueError, match="discrete"):
        model.decode_tokens(torch.zeros(1, 8, 256, dtype=torch.long))


def test_rvq_vae_samples_then_quantizes():
    b = RVQVAE(latent_dim=4, codebook_size=16, num_quantizers=2, kmeans_iters=2)
    assert (b.in_channels, b.out_channels) == (8, 4)
    x = torch.randn(2, 8, 7)
    out = b.train().encode(x)
    assert set(out.losses) == {"kl", "vq/commitment_loss"}
    assert out.codes.shape == (2, 2, 7)
    b.eval()
    mean_codes = b.encode(x, sample=False).codes
    torch.testing.assert_close(b.encode_tokens(x), mean_codes, rtol=0, atol=0)


def test_library_options_pass_through():
    b = _rvq(codebook_dim=2, decay=0.5, threshold_ema_dead_code=0, commitment_weight=0.3)
    layer = b.quantizer.layers[0]
    assert b.quantizer.has_projections  # codebook_dim 2 != latent_dim 4
    assert layer._codebook.decay == 0.5 and layer.commitment_weight == 0.3
    assert layer.rotation_trick is False
    assert _rvq(rotation_trick=True).quantizer.layers[0].rotation_trick is True
    # sync_codebook: None follows torch.distributed (off here); True forces the all-reduce
    assert layer._codebook.use_ddp is False
    assert _rvq(sync_codebook=True).quantizer.layers[0]._codebook.use_ddp is True


def test_reference_state_dict_keys():
    keys = set(_rvq(kmeans_init=True).state_dict())
    assert keys == {
        f"quantizer.layers.{i}._codebook.{name}"
        for i in range(3)
        for name in ("initted", "cluster_size", "embed_avg", "embed")
    }
    assert math.prod(_rvq().state_dict()["quantizer.layers.0._codebook.embed"].shape) == 16 * 4


def _ddp_worker(rank: int, store: str, out: str) -> None:
    torch.distributed.init_process_group("gloo", init_method=store, rank=rank, world_size=2)
    b = _rvq(kmeans_iters=2)  # built after init, as the trainer does: sync_codebook=None
    model = torch.nn.parallel.DistributedDataParallel(torch.nn.Sequential(torch.nn.Conv1d(4, 4, 1)))
    torch.manual_seed(rank)  # different data on each process
    for _ in range(2):
        b.encode(model(torch.randn(2, 4, 16))).latents.sum().backward()
    codebook = b.quantizer.layers[1]._codebook
    torch.save({"sync": codebook.use_ddp, "embed_avg": codebook.embed_avg}, f"{out}.{rank}")
    torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_codebooks_stay_identical_across_processes(tmp_path):
    out = str(tmp_path / "codebook")
    torch.multiprocessing.spawn(_ddp_worker, args=(f"file://{tmp_path}/store", out), nprocs=2)
    a, b = torch.load(f"{out}.0"), torch.load(f"{out}.1")
    assert a["sync"] and b["sync"]
    torch.testing.assert_close(a["embed_avg"], b["embed_avg"], rtol=0, atol=0)


def test_dead_codes_are_those_with_an_ema_count_below_the_absolute_threshold():
    """SAT's `threshold_ema_dead_code: 2` is a count: a code used fewer than 2 times (EMA) is
    replaced. vector-quantize-pytorch 1.34 made it a ratio of the mean count (a code at 3 of a
    mean 100 would die too), hence the pin below 1.34 in pyproject.toml."""
    torch.manual_seed(0)
    b = _rvq(threshold_ema_dead_code=2.0).train()
    b.encode(torch.randn(2, 4, 64))  # k-means init
    codebook = b.quantizer.layers[0]._codebook
    codebook.cluster_size.data.fill_(100.0)
    codebook.cluster_size.data[0, 5] = 3.0  # rare, above the threshold: kept
    codebook.cluster_size.data[0, 6] = 1.0  # below it: replaced by a batch vector
    before = codebook.embed.data.clone()
    codebook.expire_codes_(torch.randn(1, 128, 4))
    changed = (codebook.embed.data != before).any(dim=-1)[0]
    assert changed.nonzero().flatten().tolist() == [6]
