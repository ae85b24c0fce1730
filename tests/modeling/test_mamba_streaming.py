"""The forward-only temporal encoder run as a stream equals the offline encoder, however the frames arrive."""

import pytest
import torch
import torch.nn.functional as F
from test_temporal_encoder import make_encoder, with_trained_scale

import storm_hf.modeling.mamba_streaming as mamba_streaming
from storm_hf.modeling.mamba_streaming import StormMambaCache, mixer_step

FRAMES, GRID, CHANNELS = 22, 4, 6  # 2x2 tokens per frame after the 2x2 downsample: 88 tokens in all


def streaming_encoder(seed=0, **overrides):
    """A unidirectional encoder whose information crosses the clip (trained-scale projections), without pooling."""
    settings = {"bidirectional": False, "temporal_pool_size": 1, "scan_chunk_size": 8, **overrides}
    return with_trained_scale(make_encoder(seed, **settings))


def stream(encoder, features, sizes):
    """The encoder's stream output (B, T, H', W', D) for `features` arriving `sizes` frames at a time (cycled)."""
    cache = StormMambaCache(encoder.config, features.shape[0], dtype=encoder.dtype)
    outputs, start, turn = [], 0, 0
    while start < features.shape[1]:
        stop = min(start + sizes[turn % len(sizes)], features.shape[1])
        outputs.append(encoder.stream(features[:, start:stop], cache))
        start, turn = stop, turn + 1
    return torch.cat(outputs, dim=1)


@pytest.mark.parametrize("sizes", [[1], [3], [4], [9], [2, 7, 1]])
def test_stream_equals_the_offline_encoder_in_fp32_whatever_the_arrival_pattern(sizes):
    encoder = streaming_encoder()
    features = torch.randn(2, FRAMES, GRID, GRID, CHANNELS, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        offline = encoder(features).last_hidden_state  # (2, 22, 2, 2, 16): 88 tokens, run 8 at a time offline
        streamed = stream(encoder, features, sizes)
    assert streamed.shape == offline.shape
    torch.testing.assert_close(streamed, offline, rtol=1e-5, atol=1e-5)


def test_the_state_carries_the_first_frame_to_the_last():
    encoder = streaming_encoder()
    features = torch.randn(1, FRAMES, GRID, GRID, CHANNELS, generator=torch.Generator().manual_seed(1))
    changed = features.clone()
    changed[:, 0] += 1
    with torch.no_grad():
        last, last_changed = stream(encoder, features, [3])[:, -1], stream(encoder, changed, [3])[:, -1]
    assert (last - last_changed).abs().max() > 1e-3


def test_stream_equals_the_offline_encoder_in_bf16_to_rounding():
    encoder = streaming_encoder().to(torch.bfloat16)
    features = torch.randn(1, FRAMES, GRID, GRID, CHANNELS, generator=torch.Generator().manual_seed(2))
    features = features.to(torch.bfloat16)
    with torch.no_grad():
        offline = encoder(features).last_hidden_state.float()
        streamed = stream(encoder, features, [3]).float()
    # bf16 keeps 8 significant bits: differences of a few units in the last place of the largest values
    scale = offline.abs().max().item()
    assert (streamed - offline).abs().max().item() <= 4 * 2**-8 * scale
    assert (streamed - offline).abs().mean().item() <= 2**-8 * offline.abs().mean().item()


def test_stream_then_pooling_equals_the_offline_slots():
    encoder = streaming_encoder(temporal_pool_size=4, spatial_pool_size=2)
    features = torch.randn(1, 16, GRID, GRID, CHANNELS, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        offline = encoder(features).last_hidden_state  # (1, 4, 1, 1, 16)
        frames = stream(encoder, features, [5])
        slots = torch.cat([encoder.reduce(frames[:, i : i + 4], 4, 1) for i in range(0, 16, 4)], dim=1)
    torch.testing.assert_close(slots, offline, rtol=1e-5, atol=1e-5)


def test_cache_copy_is_independent_and_reset_restarts_the_stream():
    encoder = streaming_encoder()
    features = torch.randn(1, 6, GRID, GRID, CHANNELS, generator=torch.Generator().manual_seed(4))
    cache = StormMambaCache(encoder.config)
    size = cache.nbytes
    with torch.no_grad():
        first = encoder.stream(features[:, :3], cache)
        ahead = cache.copy()
        encoder.stream(features[:, 3:], ahead)  # advances the copy only
        rest = encoder.stream(features[:, 3:], cache)
        torch.testing.assert_close(torch.cat([first, rest], dim=1), encoder(features).last_hidden_state)
        cache.reset()
        torch.testing.assert_close(encoder.stream(features[:, :3], cache), first)
    assert cache.nbytes == size  # the state does not grow with the stream
    assert size == 2 * (32 * 4 + 32 * 4) * 4  # 2 layers x (conv (1, 32, d_conv 4) + ssm (1, 32, d_state 4)), fp32


def test_a_bidirectional_encoder_refuses_to_stream():
    encoder = make_encoder(bidirectional=True)
    with pytest.raises(ValueError, match="bidirectional.*frames that have not arrived yet"):
        encoder.stream(torch.randn(1, 2, GRID, GRID, CHANNELS), StormMambaCache(encoder.config))


# The single-step CUDA kernels, as mamba_ssm and causal_conv1d document them, written out in PyTorch: the kernels
# themselves run only on CUDA, so on the CPU these stand in for them to check how mixer_step calls them.
def causal_conv1d_update_semantics(x, conv_state, weight, bias=None, activation=None):
    """x (B, D, n), conv_state (B, D, S >= width - 1) updated in place with the last S inputs; out (B, D, n)."""
    window = torch.cat([conv_state, x], dim=-1)
    conv_state.copy_(window[..., -conv_state.shape[-1] :])
    out = F.conv1d(window.float(), weight.float().unsqueeze(1), bias, groups=x.shape[1])[..., -x.shape[-1] :]
    return (F.silu(out) if activation else out).to(x.dtype)


def selective_state_update_semantics(state, x, dt, A, B, C, D=None, z=None, dt_bias=None, dt_softplus=False):
    """One step: state (B, D, N) fp32 updated in place; x, dt (B, D); B, C (B, N); returns y (B, D)."""
    dt = dt.float() + dt_bias if dt_bias is not None else dt.float()
    dt = F.softplus(dt) if dt_softplus else dt
    state.copy_(state * torch.exp(dt[..., None] * A) + dt[..., None] * B.float()[:, None] * x.float()[..., None])
    y = (state * C.float()[:, None]).sum(-1) + x.float() * D
    return y.to(x.dtype)


def test_the_single_step_kernel_path_calls_the_kernels_with_the_state_they_document(monkeypatch):
    kernels = {
        "causal_conv1d_update": causal_conv1d_update_semantics,
        "selective_state_update": selective_state_update_semantics,
    }
    encoder = streaming_encoder()
    mixer = encoder.layers[0].mixer
    hidden = torch.randn(1, 20, 16, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        pure_state = StormMambaCache(encoder.config).layers[0]
        pure = torch.cat([mixer_step(mixer, hidden[:, i : i + 4], pure_state) for i in range(0, 20, 4)], dim=1)
        monkeypatch.setattr(mamba_streaming, "step_kernel", lambda operation, configured, tensor: kernels[operation])
        kernel_state = StormMambaCache(encoder.config).layers[0]
        stepped = torch.cat([mixer_step(mixer, hidden[:, i : i + 4], kernel_state) for i in range(0, 20, 4)], dim=1)
    torch.testing.assert_close(stepped, pure, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(kernel_state.ssm, pure_state.ssm, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(kernel_state.conv[..., 1:], pure_state.conv[..., 1:])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the kernels run on CUDA only")
def test_the_cuda_kernels_step_like_the_pure_path():
    pytest.importorskip("mamba_ssm")
    pytest.importorskip("causal_conv1d")
    encoder = streaming_encoder().cuda()
    features = torch.randn(1, FRAMES, GRID, GRID, CHANNELS, device="cuda")
    with torch.no_grad():
        offline = encoder.cpu()(features.cpu()).last_hidden_state
        streamed = stream(encoder.cuda(), features, [3]).cpu()
    torch.testing.assert_close(streamed, offline, rtol=1e-4, atol=1e-4)
