import pytest

from storm_hf.modeling.configuration_storm import StormConfig, StormTemporalConfig


def test_default_config_is_the_papers_7b_model():
    config = StormConfig()
    vision, text, temporal = config.vision_config, config.text_config, config.temporal_config
    assert config.model_type == "storm"
    assert (vision.model_type, vision.image_size, vision.patch_size) == ("siglip_vision_model", 448, 14)
    assert (vision.hidden_size, vision.num_hidden_layers, vision.vision_use_head) == (1152, 27, False)
    assert (text.model_type, text.hidden_size, text.num_hidden_layers, text.num_key_value_heads) == ("qwen2", 3584, 28, 4)
    assert config.vision_grid_size == 32
    assert config.vision_feature_layer == -2
    assert (temporal.vision_hidden_size, temporal.hidden_size) == (1152, 3584)
    assert (temporal.downsample, temporal.num_layers, temporal.d_state, temporal.d_conv, temporal.expand) == (2, 2, 16, 4, 2)
    assert temporal.bidirectional and temporal.temporal_pool_size == 4
    assert (temporal.spatial_pool_size, temporal.temporal_sampling_stride) == (1, 1)
    assert temporal.time_step_rank == 224  # ceil(3584 / 16)
    assert temporal.intermediate_size == 7168


def test_config_round_trips_through_save_and_load(tmp_path, tiny_config):
    config = tiny_config(temporal_config={"temporal_pool_size": 2, "spatial_pool_size": 2, "bidirectional": False})
    config.save_pretrained(tmp_path)
    loaded = StormConfig.from_pretrained(tmp_path)
    assert loaded.to_dict() == config.to_dict()
    assert isinstance(loaded.temporal_config, StormTemporalConfig)
    assert loaded.temporal_config.bidirectional is False
    assert type(loaded.text_config).__name__ == "Qwen2Config"


def test_temporal_encoder_config_round_trips_alone(tmp_path):
    config = StormTemporalConfig(vision_hidden_size=8, hidden_size=16, dt_rank=3, temporal_sampling_stride=2)
    config.save_pretrained(tmp_path)
    loaded = StormTemporalConfig.from_pretrained(tmp_path)
    assert loaded.to_dict() == config.to_dict()
    assert loaded.time_step_rank == 3


def test_temporal_widths_are_taken_from_the_vision_and_text_configs(tiny_config):
    temporal = tiny_config().temporal_config
    assert (temporal.vision_hidden_size, temporal.hidden_size) == (32, 64)


@pytest.mark.parametrize(
    "temporal, message",
    [
        ({"temporal_pool_size": 0}, "temporal_pool_size must be a positive integer"),
        ({"temporal_sampling_stride": -1}, "temporal_sampling_stride must be a positive integer"),
        ({"num_layers": -1}, "num_layers must be an integer >= 0"),
        ({"dt_rank": "big"}, "dt_rank must be a positive integer"),
        ({"scan_chunk_size": 0}, "scan_chunk_size must be a positive integer"),
        ({"scan_chunk_size": 3}, "scan_chunk_size (3) must be at least d_conv (4)"),
        ({"hidden_size": 48}, "must equal the language model's text_config.hidden_size (64)"),
        ({"vision_hidden_size": 16}, "must equal vision_config.hidden_size (32)"),
    ],
)
def test_bad_temporal_settings_are_refused(tiny_config, temporal, message):
    with pytest.raises(ValueError) as error:
        tiny_config(temporal_config=temporal)
    assert message in str(error.value)
