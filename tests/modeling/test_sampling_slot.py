"""Which slot of each group of s test-time sampling keeps: the first (the default) or the last."""

import pytest
import torch
from test_temporal_encoder import make_encoder, with_reduction, with_trained_scale

from storm_hf.modeling.configuration_storm import StormTemporalConfig
from storm_hf.modeling.modeling_storm import StormForConditionalGeneration
from storm_hf.modeling.token_reduction import kept_slots, num_temporal_slots


@pytest.mark.parametrize(
    "slots, stride, first, last",
    [
        (4, 2, [0, 2], [1, 3]),
        (5, 2, [0, 2, 4], [1, 3, 4]),  # an incomplete last group keeps its last slot
        (7, 3, [0, 3, 6], [2, 5, 6]),
        (3, 1, [0, 1, 2], [0, 1, 2]),
        (1, 4, [0], [0]),
    ],
)
def test_kept_slots(slots, stride, first, last):
    assert kept_slots(slots, stride, "first") == first
    assert kept_slots(slots, stride, "last") == last
    assert len(last) == num_temporal_slots(4 * slots, 4, stride)  # the processor's count holds for both


def test_the_default_keeps_the_first_slot_and_last_keeps_the_last_of_each_group():
    assert StormTemporalConfig().temporal_sampling_slot == "first"
    encoder = with_trained_scale(make_encoder(temporal_pool_size=4, bidirectional=False))
    features = torch.randn(1, 20, 4, 4, 6, generator=torch.Generator().manual_seed(0))  # 5 slots
    with torch.no_grad():
        slots = with_reduction(encoder, temporal_sampling_stride=1)(features).last_hidden_state  # (1, 5, 2, 2, 16)
        default = encoder(features, temporal_sampling_stride=2).last_hidden_state
        last = encoder(features, temporal_sampling_stride=2, temporal_sampling_slot="last").last_hidden_state
        configured = with_reduction(encoder, temporal_sampling_slot="last")(features, temporal_sampling_stride=2)
    torch.testing.assert_close(default, slots[:, [0, 2, 4]])
    torch.testing.assert_close(last, slots[:, [1, 3, 4]])
    torch.testing.assert_close(configured.last_hidden_state, last)


def test_forward_only_the_last_slot_of_a_group_has_seen_the_dropped_one():
    """A frame of the dropped slot changes the kept slot of its group only when the kept slot is the last."""
    encoder = with_trained_scale(make_encoder(temporal_pool_size=4, bidirectional=False))
    features = torch.randn(1, 8, 4, 4, 6, generator=torch.Generator().manual_seed(1))  # one group of 2 slots
    changed = features.clone()
    changed[:, 1] += 1  # a frame of slot 0
    changed_late = features.clone()
    changed_late[:, 6] += 1  # a frame of slot 1
    with torch.no_grad():
        for slot, dropped, sees_it in (("first", changed_late, False), ("last", changed, True)):
            kept = encoder(features, temporal_sampling_stride=2, temporal_sampling_slot=slot).last_hidden_state
            after = encoder(dropped, temporal_sampling_stride=2, temporal_sampling_slot=slot).last_hidden_state
            assert bool((kept - after).abs().max() > 1e-4) is sees_it, slot


def test_a_bad_slot_is_refused_with_the_choices():
    with pytest.raises(ValueError, match=r"temporal_sampling_slot must be one of \('first', 'last'\)"):
        StormTemporalConfig(temporal_sampling_slot="middle")
    encoder = make_encoder()
    with pytest.raises(ValueError, match="temporal_sampling_slot must be one of"):
        encoder(torch.randn(1, 8, 4, 4, 6), temporal_sampling_slot="centre")


def test_generate_takes_the_slot_per_call(tiny_config):
    torch.manual_seed(0)
    model = StormForConditionalGeneration(tiny_config(temporal_config={"bidirectional": False})).eval()
    pixels = torch.randn(1, 16, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    ids = torch.tensor([[1] + [100] * 8 + [3]])  # 4 slots at s=2 -> 2 kept slots of 4 tokens
    with torch.no_grad():
        logits = {
            slot: model(input_ids=ids, pixel_values_videos=pixels, temporal_sampling_stride=2,
                        temporal_sampling_slot=slot).logits[0, -1]
            for slot in ("first", "last")
        }
        out = model.generate(input_ids=ids, pixel_values_videos=pixels, temporal_sampling_stride=2,
                             temporal_sampling_slot="last", max_new_tokens=3, do_sample=False, pad_token_id=0)
    assert not torch.allclose(logits["first"], logits["last"])
    assert out.shape == (1, ids.shape[1] + 3)
