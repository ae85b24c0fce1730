import math

import pytest
import torch
from transformers import MambaConfig
from transformers.models.mamba.modeling_mamba import MambaMixer

from storm_hf.modeling.configuration_storm import StormTemporalConfig
from storm_hf.modeling.mamba_mixer import StormMambaMixer
from storm_hf.modeling.modeling_storm import StormTemporalEncoder
from storm_hf.modeling.token_reduction import space_to_channel


def make_encoder(seed=0, **overrides):
    settings = {"vision_hidden_size": 6, "hidden_size": 16, "d_state": 4, "num_layers": 2, **overrides}
    torch.manual_seed(seed)
    return StormTemporalEncoder(StormTemporalConfig(**settings)).eval()


def with_trained_scale(encoder):
    """Projection weights of a trained model's scale: at init (std 0.02) information crosses a clip only faintly."""
    with torch.no_grad():
        for name, parameter in encoder.named_parameters():
            if name.endswith("proj.weight"):
                parameter.normal_(std=0.3)
    return encoder


def with_reduction(encoder, **reduction):
    """The same weights with other pooling / sampling settings."""
    other = StormTemporalEncoder(StormTemporalConfig(**{**encoder.config.to_dict(), **reduction})).eval()
    other.load_state_dict(encoder.state_dict())
    return other


@pytest.mark.parametrize(
    "frames, grid, k, p, s, expected",
    [
        (8, 8, 4, 1, 1, (2, 4, 4)),
        (8, 8, 4, 2, 1, (2, 2, 2)),
        (16, 8, 4, 1, 2, (2, 4, 4)),
        (12, 8, 4, 1, 2, (2, 4, 4)),  # 3 slots, keep slots 0 and 2
        (12, 8, 4, 2, 4, (1, 2, 2)),
        (1, 8, 4, 1, 2, (1, 4, 4)),  # an image: no temporal pooling or sampling
        (4, 7, 2, 1, 1, (2, 4, 4)),  # odd grid: 7x7 padded to 8x8 before the 2x2 window
        (4, 10, 2, 2, 1, (2, 3, 3)),  # 5x5 after downsample, 3x3 after a 2x2 pool with overhang
    ],
)
def test_output_shape_follows_pooling_and_sampling(frames, grid, k, p, s, expected):
    encoder = make_encoder(temporal_pool_size=k, spatial_pool_size=p)
    features = torch.randn(2, frames, grid, grid, 6)
    out = encoder(features, temporal_sampling_stride=s).last_hidden_state
    assert tuple(out.shape) == (2, *expected[:1], expected[1], expected[2], 16)
    slots, side = encoder.output_grid(frames, grid, s)
    assert (slots, side, side) == expected


def test_space_to_channel_orders_row_offset_then_column_offset_then_channel():
    x = torch.arange(2 * 4 * 4 * 3, dtype=torch.float32).view(1, 2, 4, 4, 3)
    y = space_to_channel(x, 2)
    assert y.shape == (1, 2, 2, 2, 12)
    for i in range(2):
        for j in range(2):
            expected = torch.cat([x[0, 1, 2 * i, 2 * j], x[0, 1, 2 * i, 2 * j + 1], x[0, 1, 2 * i + 1, 2 * j], x[0, 1, 2 * i + 1, 2 * j + 1]])
            assert torch.equal(y[0, 1, i, j], expected)


def test_odd_grids_are_zero_padded_before_downsampling():
    x = torch.randn(1, 1, 3, 3, 2)
    y = space_to_channel(x, 2)
    padded = torch.zeros(1, 1, 4, 4, 2)
    padded[:, :, :3, :3] = x
    assert torch.equal(y, space_to_channel(padded, 2))


def test_pooling_and_sampling_equal_explicit_means_and_strides_of_the_unreduced_output():
    encoder = make_encoder(temporal_pool_size=4, spatial_pool_size=2)
    features = torch.randn(2, 16, 8, 8, 6)
    with torch.no_grad():
        full = with_reduction(encoder, temporal_pool_size=1, spatial_pool_size=1)(features).last_hidden_state
        reduced = encoder(features, temporal_sampling_stride=2).last_hidden_state
    assert full.shape == (2, 16, 4, 4, 16)
    expected = torch.stack(
        [
            torch.stack(
                [
                    torch.stack(
                        [full[:, 4 * slot : 4 * slot + 4, 2 * r : 2 * r + 2, 2 * c : 2 * c + 2].mean(dim=(1, 2, 3)) for c in range(2)],
                        dim=1,
                    )
                    for r in range(2)
                ],
                dim=1,
            )
            for slot in (0, 2)  # 4 slots, stride 2 keeps 0 and 2
        ],
        dim=1,
    )
    torch.testing.assert_close(reduced, expected, rtol=1e-5, atol=1e-6)


def test_bidirectional_encoder_sees_the_future_and_unidirectional_does_not():
    features = torch.randn(1, 8, 4, 4, 6)
    changed = features.clone()
    changed[:, -1] += 1.0
    for bidirectional in (True, False):
        encoder = with_trained_scale(make_encoder(bidirectional=bidirectional, temporal_pool_size=1))
        with torch.no_grad():
            first = encoder(features).last_hidden_state[:, 0]
            first_changed = encoder(changed).last_hidden_state[:, 0]
        moved = (first - first_changed).abs().max().item()
        if bidirectional:
            assert moved > 1e-6  # measured ~1e-4; the causal encoder gives exactly 0
        else:
            assert moved == 0.0


def trained_scale_mixer(std=0.3, **settings):
    """A mixer with Mamba's SSM initialisation and weights of a trained model's scale (`std`)."""
    config = StormTemporalConfig(**{"vision_hidden_size": 8, "hidden_size": 16, "d_state": 4, **settings})
    torch.manual_seed(0)
    mixer = StormMambaMixer(config)
    mixer.init_ssm_parameters(config)
    for name, parameter in mixer.named_parameters():
        if name.endswith("weight"):
            torch.nn.init.normal_(parameter, std=std)
    return mixer


@pytest.mark.parametrize("scan_chunk_size", [512, 8])  # the whole 37-step sequence at once, or in 5 chunks
def test_unidirectional_mixer_equals_transformers_mamba_mixer_with_the_same_weights(scan_chunk_size):
    ours = trained_scale_mixer(std=0.2, hidden_size=32, d_state=8, bidirectional=False, scan_chunk_size=scan_chunk_size)
    theirs = MambaMixer(
        MambaConfig(
            hidden_size=32,
            state_size=8,
            expand=2,
            conv_kernel=4,
            time_step_rank=ours.time_step_rank,
            use_bias=False,
            use_conv_bias=True,
            num_hidden_layers=1,
        ),
        layer_idx=0,
    )
    theirs.load_state_dict(ours.state_dict())  # strict: the names are mamba_ssm's
    x = torch.randn(2, 37, 32)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
# chunks that divide the sequence, that leave a short last chunk (1 step, fewer than the convolution's 3-step
# halo), and the smallest allowed (d_conv = 4)
@pytest.mark.parametrize("length, chunk", [(64, 16), (37, 8), (33, 32), (50, 4)])
def test_mixer_in_chunks_equals_the_whole_sequence(bidirectional, dtype, length, chunk):
    mixer = trained_scale_mixer(bidirectional=bidirectional, scan_chunk_size=chunk).to(dtype)
    hidden = torch.randn(2, length, 16).to(dtype)
    with torch.no_grad():
        chunked, whole = mixer._forward_chunked(hidden), mixer._forward_whole(hidden)
    # the same arithmetic, but matrix products over fewer rows may round differently (bit-identical here in bf16)
    tolerance = {"rtol": 1e-5, "atol": 1e-6} if dtype == torch.float32 else {}  # else bf16's defaults
    torch.testing.assert_close(chunked, whole, **tolerance)


def test_mixer_runs_in_chunks_only_without_gradients_on_long_sequences():
    mixer = trained_scale_mixer(scan_chunk_size=8)
    calls, original = [], mixer._forward_chunked

    def spy(hidden):
        calls.append(hidden.shape[1])
        return original(hidden)

    mixer._forward_chunked = spy
    hidden = torch.randn(1, 20, 16)
    with_grad = mixer(hidden)
    with torch.no_grad():
        mixer(hidden[:, :8])  # one chunk: the whole-sequence pass
        without_grad = mixer(hidden)
    assert calls == [20]
    torch.testing.assert_close(without_grad, with_grad.detach(), rtol=1e-5, atol=1e-6)


def test_backward_branch_has_its_own_ssm_parameters_and_shares_the_projections():
    names = {name for name, _ in StormMambaMixer(StormTemporalConfig(hidden_size=16, d_state=4)).named_parameters()}
    for name in ("conv1d", "x_proj", "dt_proj"):
        assert f"{name}.weight" in names and f"{name}_b.weight" in names
    assert {"A_log", "D", "A_b_log", "D_b", "in_proj.weight", "out_proj.weight"} <= names
    assert not any(name.startswith(("in_proj_b", "out_proj_b")) for name in names)


def test_mamba_initialisation():
    encoder = make_encoder(hidden_size=32, d_state=4)
    mixer = encoder.layers[0].mixer
    assert torch.equal(mixer.A_log, torch.log(torch.arange(1, 5.0)).expand(64, -1))
    assert torch.equal(mixer.D_b, torch.ones(64))
    dt = torch.nn.functional.softplus(mixer.dt_proj_b.bias)
    assert dt.min() >= 1e-4 and dt.max() <= 0.1 + 1e-6
    assert mixer.dt_proj.weight.abs().max() <= math.sqrt(1 / 2) + 1e-6  # dt_rank = ceil(32 / 16) = 2


def test_a_clip_that_is_not_a_multiple_of_k_is_refused():
    encoder = make_encoder(temporal_pool_size=4)
    with pytest.raises(ValueError, match=r"A clip of 6 frames cannot be pooled 4 frames at a time.*e\.g\. 4 or 8"):
        encoder(torch.randn(1, 6, 4, 4, 6))


@pytest.mark.parametrize("stride", [0, -2, 1.5, "2"])
def test_a_bad_stride_is_refused(stride):
    with pytest.raises(ValueError, match="temporal_sampling_stride must be a positive integer"):
        make_encoder()(torch.randn(1, 4, 4, 4, 6), temporal_sampling_stride=stride)


def test_zero_layers_is_a_linear_projector_only():
    encoder = make_encoder(num_layers=0, temporal_pool_size=1)
    features = torch.randn(1, 2, 4, 4, 6)
    with torch.no_grad():
        out = encoder(features).last_hidden_state
        expected = encoder.projector(space_to_channel(features, 2))
    torch.testing.assert_close(out, expected)


def test_encoder_saves_and_loads_alone(tmp_path):
    encoder = make_encoder()
    encoder.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    loaded = StormTemporalEncoder.from_pretrained(tmp_path).eval()
    features = torch.randn(1, 4, 4, 4, 6)
    with torch.no_grad():
        assert torch.equal(encoder(features).last_hidden_state, loaded(features).last_hidden_state)
