"""STORM: a vision tower, a Mamba temporal encoder that pools and samples video tokens, and a causal LM.

Hub code: imports torch, transformers' public API and siblings in this folder.
"""

from dataclasses import dataclass

import torch
from torch import nn
from transformers import AutoModel, GenerationMixin, PreTrainedModel
from transformers.modeling_outputs import (
    BaseModelOutput,
    BaseModelOutputWithPast,
    BaseModelOutputWithPooling,
    CausalLMOutputWithPast,
)
from transformers.utils import can_return_tuple

from .configuration_storm import StormConfig, StormTemporalConfig
from .mamba_mixer import StormMambaBlock, StormMambaMixer
from .mamba_streaming import StormMambaCache, block_step
from .streaming_storm import StormStreamingSession
from .transformers_compat import CACHE_NAME, cache_kwarg, output_cache, pop_cache
from .token_reduction import (
    num_temporal_slots,
    reduced_grid_side,
    resolve_slot,
    resolve_stride,
    space_to_channel,
    spatial_pool,
    temporal_pool_and_sample,
)


def _concat(tensors: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """Per-media tokens [(n_i, D)] as one (sum n_i, D) tensor; a single one is returned as it is, not copied."""
    return tensors[0] if len(tensors) == 1 else torch.cat(tensors)


class StormTemporalEncoder(PreTrainedModel):
    """Vision features `(B, T, H, W, C)` -> LLM-width tokens `(B, T', H', W', D)`.

    Space-to-channel downsample -> Linear to D -> residual bidirectional Mamba blocks over the clip flattened
    frame -> row -> column -> temporal average pooling (k) -> spatial average pooling -> temporal sampling (s).
    A single frame (an image) skips temporal pooling and sampling. A unidirectional encoder also runs as a stream,
    frames arriving a few at a time (`stream`, carrying a `StormMambaCache`).
    """

    config: StormTemporalConfig
    config_class = StormTemporalConfig
    main_input_name = "vision_features"
    supports_gradient_checkpointing = True
    _no_split_modules = ["StormMambaBlock"]
    # No attention inside: every attention implementation chosen for the whole model is fine here.
    _supports_flash_attn = True
    _supports_sdpa = True
    _supports_flex_attn = True
    _supports_attention_backend = True

    def __init__(self, config: StormTemporalConfig):
        super().__init__(config)
        in_features = config.vision_hidden_size * config.downsample**2
        self.projector = nn.Linear(in_features, config.hidden_size)
        self.layers = nn.ModuleList([StormMambaBlock(config) for _ in range(config.num_layers)])
        self.post_init()

    @torch.no_grad()
    def _init_weights(self, module):
        super()._init_weights(module)
        if isinstance(module, StormMambaMixer):
            module.init_ssm_parameters(self.config)

    def output_grid(self, num_frames: int, grid_side: int, temporal_sampling_stride=None) -> tuple[int, int]:
        """(temporal slots, tokens per side) this encoder produces for a clip of `num_frames` frames."""
        config = self.config
        stride = resolve_stride(temporal_sampling_stride, config.temporal_sampling_stride)
        side = reduced_grid_side(grid_side, config.downsample, config.spatial_pool_size)
        return num_temporal_slots(num_frames, config.temporal_pool_size, stride), side

    def forward(
        self, vision_features: torch.Tensor, temporal_sampling_stride=None, temporal_sampling_slot=None, **kwargs
    ) -> BaseModelOutput:
        config = self.config
        if vision_features.dim() != 5:
            raise ValueError(
                f"vision_features must be a grid (batch, frames, height, width, channels), got shape "
                f"{tuple(vision_features.shape)}."
            )
        frames = vision_features.shape[1]
        stride = resolve_stride(temporal_sampling_stride, config.temporal_sampling_stride)
        slot = resolve_slot(temporal_sampling_slot, config.temporal_sampling_slot)
        pool = 1 if frames == 1 else config.temporal_pool_size
        if frames % pool:
            raise ValueError(
                f"A clip of {frames} frames cannot be pooled {pool} frames at a time (temporal_pool_size): give a "
                f"multiple of {pool} frames, e.g. {frames - frames % pool or pool} or {frames + pool - frames % pool}."
            )
        x = self.project(vision_features)  # (B, T, H', W', D)
        grid = x.shape
        hidden = x.reshape(grid[0], -1, config.hidden_size)  # (B, T*H'*W', D): frame -> row -> column
        del x  # `hidden` alone holds the projected clip, so each block's input is freed once the next one starts
        for layer in self.layers:
            hidden = layer(hidden)
        x = hidden.view(grid)  # (B, T, H', W', D)
        return BaseModelOutput(last_hidden_state=self.reduce(x, pool, 1 if frames == 1 else stride, slot))

    def project(self, vision_features: torch.Tensor) -> torch.Tensor:
        """Space-to-channel downsample and the linear projection: (B, T, G, G, C) -> (B, T, H', W', D)."""
        return self.projector(space_to_channel(vision_features, self.config.downsample))

    def reduce(self, x: torch.Tensor, pool: int, stride: int, slot: str = "first") -> torch.Tensor:
        """Temporal pooling, sampling and spatial pooling of the Mamba blocks' output: (B, T, H', W', D) ->
        (B, T', H'', W'', D)."""
        x = temporal_pool_and_sample(x, pool, stride, slot)  # (B, T', H', W', D)
        return spatial_pool(x, self.config.spatial_pool_size)  # (B, T', H'', W'', D)

    def stream(self, vision_features: torch.Tensor, cache: StormMambaCache) -> torch.Tensor:
        """The next frames of a stream through the projection and the Mamba blocks, forward-only, going on from the
        state in `cache` (updated in place): (B, n, G, G, C) -> (B, n, H', W', D), before pooling.

        Frames may come one, a few or many at a time: the output equals the unreduced output of `forward` over the
        whole clip, for a unidirectional encoder.
        """
        if self.config.bidirectional and self.config.num_layers:
            raise ValueError(
                "This temporal encoder is bidirectional: its backward scan reads every clip from its last frame back, "
                "so each token depends on frames that have not arrived yet. Stream with a unidirectional encoder "
                "(temporal_config.bidirectional=False), or encode the finished clip with forward()."
            )
        x = self.project(vision_features)  # (B, n, H', W', D)
        hidden = x.reshape(x.shape[0], -1, self.config.hidden_size)  # (B, n*H'*W', D): frame -> row -> column
        for layer, state in zip(self.layers, cache.layers):
            hidden = block_step(layer, hidden, state)
        return hidden.view(x.shape)


# transformers' output classes with STORM's fields added: their own fields (the KV cache's name among them) follow
# the installed release.
@dataclass
class StormModelOutputWithPast(BaseModelOutputWithPast):
    """`video_hidden_states` / `image_hidden_states`: the visual tokens that filled the placeholders,
    `(num_visual_tokens, hidden_size)`."""

    video_hidden_states: torch.Tensor | None = None
    image_hidden_states: torch.Tensor | None = None


@dataclass
class StormCausalLMOutputWithPast(CausalLMOutputWithPast):
    """`video_hidden_states` / `image_hidden_states`: the visual tokens that filled the placeholders,
    `(num_visual_tokens, hidden_size)`."""

    video_hidden_states: torch.Tensor | None = None
    image_hidden_states: torch.Tensor | None = None


class StormPreTrainedModel(PreTrainedModel):
    config: StormConfig
    config_class = StormConfig
    base_model_prefix = "model"
    input_modalities = ("image", "video", "text")
    supports_gradient_checkpointing = True
    _no_split_modules = ["StormMambaBlock"]
    _skip_keys_device_placement = [CACHE_NAME]
    _supports_flash_attn = True
    _supports_sdpa = True
    _supports_flex_attn = True
    _supports_attention_backend = True


class StormVisualEncoding:
    """The visual path shared by [`StormModel`] and serving engines that run STORM's vision side as it is: frames
    through `vision_tower` up to `vision_feature_layer`, then `temporal_encoder` per clip.

    Needs `config` ([`StormConfig`]), `vision_tower` and `temporal_encoder` on the instance.
    """

    @property
    def _num_vision_layers(self) -> int:
        """Encoder layers up to `vision_feature_layer` (hidden state i is the output of i layers; -1 the last)."""
        layer, total = self.config.vision_feature_layer, self.config.vision_config.num_hidden_layers
        count = layer if layer >= 0 else total + 1 + layer
        if not 0 < count <= total:
            raise ValueError(f"vision_feature_layer={layer} is outside the vision tower's {total} layers.")
        return count

    def _encode_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) -> (N, G, G, C) patch features, `vision_chunk_size` frames at a time."""
        config = self.config
        side, size = config.vision_grid_size, config.vision_config.image_size
        if tuple(frames.shape[-3:]) != (3, size, size):
            raise ValueError(
                f"Frames must be 3x{size}x{size} (the vision tower's image_size), got {tuple(frames.shape[-3:])}: "
                "prepare videos and images with StormProcessor, which resizes them."
            )
        tower = self.vision_tower
        features = None
        for start in range(0, frames.shape[0], config.vision_chunk_size):
            # Run only the layers up to the selected one: no later layer, no post-norm, no stored hidden states.
            hidden = tower.embeddings(frames[start : start + config.vision_chunk_size].to(tower.dtype))
            for layer in tower.encoder.layers[: self._num_vision_layers]:
                hidden = layer(hidden, None)  # (chunk, G*G, C)
            if features is None:
                features = hidden.new_empty(frames.shape[0], side, side, hidden.shape[-1])
            features[start : start + len(hidden)] = hidden.view(len(hidden), side, side, -1)
        return features

    def _encode_clips(
        self, features: torch.Tensor, frame_counts: list[int], strides: list, slot=None
    ) -> list[torch.Tensor]:
        """Per-clip frame features (sum T, G, G, C) -> per-clip tokens [(T'*S*S, D)]; clips of equal length and
        stride are batched. `strides` holds one temporal sampling stride (or None for the config's) per clip, `slot`
        which slot of each group of `stride` sampling keeps (None for the config's)."""
        clips = torch.split(features, frame_counts)
        outputs: list[torch.Tensor | None] = [None] * len(clips)
        for length, stride in sorted(set(zip(frame_counts, strides)), key=str):
            members = [i for i, key in enumerate(zip(frame_counts, strides)) if key == (length, stride)]
            if len(members) == len(clips):  # every clip has this length: a view of the features, not a copy
                grid = features.view(len(clips), length, *features.shape[1:])  # (b, T, G, G, C)
            else:
                grid = torch.stack([clips[i] for i in members])  # (b, T, G, G, C)
            encoded = self.temporal_encoder(
                grid, temporal_sampling_stride=stride, temporal_sampling_slot=slot
            ).last_hidden_state
            for i, tokens in zip(members, encoded.flatten(1, 3)):  # (b, T'*S*S, D)
                outputs[i] = tokens
        return outputs

    def encode_video_frames(
        self, frames: torch.Tensor, frame_counts: list[int], strides: list, slot=None
    ) -> list[torch.Tensor]:
        """Videos given as their frames one after another, `frames` (sum T, 3, H, W) with `frame_counts` [T_i], and
        one temporal sampling stride per video -> one `(T'_i * S * S, hidden)` tensor of tokens per video. `slot`:
        the slot of each group of `stride` that sampling keeps (None for the config's)."""
        pool = self.config.temporal_config.temporal_pool_size
        bad = [c for c in frame_counts if c % pool]
        if bad:
            raise ValueError(
                f"Videos must have a multiple of temporal_pool_size={pool} frames; got frame counts {frame_counts}. "
                "The processor delivers valid counts: pass num_frames as a multiple of it."
            )
        return self._encode_clips(self._encode_frames(frames), frame_counts, strides, slot)

    def get_video_features(
        self,
        pixel_values_videos: torch.FloatTensor,
        video_frame_counts: torch.LongTensor | None = None,
        temporal_sampling_stride=None,
        temporal_sampling_slot=None,
        **kwargs,
    ) -> BaseModelOutputWithPooling:
        """pixel_values_videos `(num_videos, T_max, 3, H, W)`, zero-padded past each video's `video_frame_counts`.

        Returns `pooler_output`: a tuple with one `(T' * S * S, hidden)` tensor per video. Padded frames are never
        encoded, and no scan crosses from one video into another.
        """
        if pixel_values_videos.dim() != 5:
            raise ValueError(
                "pixel_values_videos must be (num_videos, frames, channels, height, width), got shape "
                f"{tuple(pixel_values_videos.shape)}."
            )
        num_videos, max_frames = pixel_values_videos.shape[:2]
        if video_frame_counts is None:
            counts = [max_frames] * num_videos
        else:
            counts = [int(c) for c in video_frame_counts]
            if len(counts) != num_videos or any(c < 1 or c > max_frames for c in counts):
                raise ValueError(
                    f"video_frame_counts {counts} does not fit pixel_values_videos with {num_videos} videos of at "
                    f"most {max_frames} frames."
                )
        if all(count == max_frames for count in counts):  # no padding: a view of the pixels, not a copy
            frames = pixel_values_videos.flatten(0, 1)  # (N*T, 3, H, W)
        else:
            frames = torch.cat([video[:count] for video, count in zip(pixel_values_videos, counts)])  # (sum T, 3, H, W)
        tokens = self.encode_video_frames(
            frames, counts, [temporal_sampling_stride] * num_videos, temporal_sampling_slot
        )
        return BaseModelOutputWithPooling(pooler_output=tuple(tokens))

    def get_image_features(self, pixel_values: torch.FloatTensor, **kwargs) -> BaseModelOutputWithPooling:
        """pixel_values `(num_images, 3, H, W)` -> `pooler_output`: one `(S * S, hidden)` tensor per image."""
        if pixel_values.dim() != 4:
            raise ValueError(
                f"pixel_values must be (num_images, channels, height, width), got shape {tuple(pixel_values.shape)}."
            )
        features = self._encode_frames(pixel_values)
        tokens = self._encode_clips(features, [1] * len(pixel_values), [None] * len(pixel_values))
        return BaseModelOutputWithPooling(pooler_output=tuple(tokens))


class StormModel(StormVisualEncoding, StormPreTrainedModel):
    def __init__(self, config: StormConfig):
        super().__init__(config)
        self.vision_tower = AutoModel.from_config(config.vision_config)
        self.temporal_encoder = StormTemporalEncoder(config.temporal_config)
        self.language_model = AutoModel.from_config(config.text_config)
        self.post_init()

    def get_input_embeddings(self):
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value):
        self.language_model.set_input_embeddings(value)

    def _describe_videos(self, pixel_values_videos, video_frame_counts, stride) -> str:
        temporal = self.config.temporal_config
        counts = (
            [int(c) for c in video_frame_counts]
            if video_frame_counts is not None
            else [pixel_values_videos.shape[1]] * pixel_values_videos.shape[0]
        )
        slots, side = zip(*(self.temporal_encoder.output_grid(c, self.config.vision_grid_size, stride) for c in counts))
        return (
            f"videos with frame counts {counts}, temporal_pool_size={temporal.temporal_pool_size}, "
            f"temporal_sampling_stride={resolve_stride(stride, temporal.temporal_sampling_stride)}, "
            f"spatial_pool_size={temporal.spatial_pool_size} -> temporal slots {list(slots)} of {side[0]}x{side[0]} "
            "tokens"
        )

    def placeholder_mask(self, input_ids, inputs_embeds, token_id: int) -> torch.Tensor:
        """(B, L) bool: where the `token_id` placeholders are, read from `input_ids`, or from `inputs_embeds` (rows equal
        to the placeholder's embedding) when there are no ids."""
        if input_ids is not None and input_ids.shape[-1] > 0:
            return input_ids == token_id
        placeholder = self.get_input_embeddings()(torch.tensor(token_id, device=inputs_embeds.device))
        return (inputs_embeds == placeholder).all(-1)

    def _scatter_features(self, input_ids, inputs_embeds, token_id, features, kind, describe) -> torch.Tensor:
        """Fill the `token_id` placeholders of `inputs_embeds` with `features`, checking the counts agree."""
        mask = self.placeholder_mask(input_ids, inputs_embeds, token_id)
        num_tokens, num_features = int(mask.sum()), features.shape[0]
        if num_tokens != num_features:
            raise ValueError(
                f"The prompt has {num_tokens} {kind} placeholder tokens but the {kind} features have {num_features} "
                f"tokens ({describe()}). Build inputs with StormProcessor using the same settings as the call "
                "(num_frames, temporal_sampling_stride), so that the placeholders are expanded to match. In "
                "generate(use_cache=False), every step re-reads the generated tokens too: a generated placeholder "
                "token counts as one more; pass suppress_tokens=[config.video_token_id, config.image_token_id]."
            )
        mask = mask.unsqueeze(-1).expand_as(inputs_embeds).to(inputs_embeds.device)
        return inputs_embeds.masked_scatter(mask, features.to(inputs_embeds.device, inputs_embeds.dtype))

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        pixel_values: torch.FloatTensor | None = None,
        pixel_values_videos: torch.FloatTensor | None = None,
        video_frame_counts: torch.LongTensor | None = None,
        temporal_sampling_stride=None,
        temporal_sampling_slot=None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        use_cache: bool | None = None,
        **kwargs,
    ) -> StormModelOutputWithPast:
        """The KV cache comes as `cache` or `past_key_values` (transformers renamed it in 5.24; both are accepted)
        and goes to the language model under the installed release's name."""
        cache = pop_cache(kwargs)
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Pass exactly one of input_ids or inputs_embeds.")
        if inputs_embeds is None:
            inputs_embeds = self.get_input_embeddings()(input_ids)

        image_features = video_features = None
        if pixel_values is not None:
            image_features = _concat(self.get_image_features(pixel_values).pooler_output)
            inputs_embeds = self._scatter_features(
                input_ids,
                inputs_embeds,
                self.config.image_token_id,
                image_features,
                "image",
                lambda: f"{pixel_values.shape[0]} images",
            )
        if pixel_values_videos is not None:
            video_features = _concat(
                self.get_video_features(
                    pixel_values_videos, video_frame_counts, temporal_sampling_stride, temporal_sampling_slot
                ).pooler_output
            )
            inputs_embeds = self._scatter_features(
                input_ids,
                inputs_embeds,
                self.config.video_token_id,
                video_features,
                "video",
                lambda: self._describe_videos(pixel_values_videos, video_frame_counts, temporal_sampling_stride),
            )

        outputs = self.language_model(
            attention_mask=attention_mask,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            **cache_kwarg(cache),
            **kwargs,
        )
        return StormModelOutputWithPast(
            last_hidden_state=outputs.last_hidden_state,
            **cache_kwarg(output_cache(outputs)),
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            video_hidden_states=video_features,
            image_hidden_states=image_features,
        )


class StormForConditionalGeneration(StormPreTrainedModel, GenerationMixin):
    _tied_weights_keys = {"lm_head.weight": "model.language_model.embed_tokens.weight"}

    def __init__(self, config: StormConfig):
        super().__init__(config)
        self.model = StormModel(config)
        self.lm_head = nn.Linear(config.text_config.hidden_size, config.text_config.vocab_size, bias=False)
        self.post_init()

    def get_input_embeddings(self):
        return self.model.get_input_embeddings()

    def set_input_embeddings(self, value):
        self.model.set_input_embeddings(value)

    def get_output_embeddings(self) -> nn.Module:
        return self.lm_head

    def set_output_embeddings(self, new_embeddings):
        self.lm_head = new_embeddings

    def get_video_features(
        self,
        pixel_values_videos,
        video_frame_counts=None,
        temporal_sampling_stride=None,
        temporal_sampling_slot=None,
        **kwargs,
    ):
        return self.model.get_video_features(
            pixel_values_videos, video_frame_counts, temporal_sampling_stride, temporal_sampling_slot
        )

    def get_image_features(self, pixel_values, **kwargs):
        return self.model.get_image_features(pixel_values)

    def _expand_inputs_for_generation(self, expand_size=1, is_encoder_decoder=False, input_ids=None, **model_kwargs):
        """Repeat every sample's videos and images with the sample, for beam search and `num_return_sequences`.

        transformers' default repeats every tensor row by row, which repeats each video (not each sample's videos):
        with several videos in one prompt the copies would meet the wrong placeholders.
        """
        if expand_size == 1:
            return input_ids, model_kwargs
        stride = model_kwargs.pop("temporal_sampling_stride", None)  # one value for the batch, not repeated
        media = {}
        for pixels_key, token_id in (
            ("pixel_values_videos", self.config.video_token_id),
            ("pixel_values", self.config.image_token_id),
        ):
            if model_kwargs.get(pixels_key) is None:
                continue
            rows = self._media_rows_per_sample(input_ids, model_kwargs, pixels_key, token_id, stride)
            # each sample's rows, expand_size times over, sample after sample
            order = [i for row in rows for _ in range(expand_size) for i in row]
            keys = [pixels_key] + (["video_frame_counts"] if pixels_key == "pixel_values_videos" else [])
            for key in keys:
                if model_kwargs.get(key) is not None:
                    values = model_kwargs.pop(key)
                    media[key] = values[torch.tensor(order, dtype=torch.long, device=values.device)]
        input_ids, model_kwargs = super()._expand_inputs_for_generation(
            expand_size, is_encoder_decoder, input_ids, **model_kwargs
        )
        if stride is not None:
            model_kwargs["temporal_sampling_stride"] = stride
        return input_ids, {**model_kwargs, **media}

    def _media_rows_per_sample(self, input_ids, model_kwargs, pixels_key, token_id, stride) -> list[list[int]]:
        """For every sample of the batch, the rows of `model_kwargs[pixels_key]` its placeholders take, in order."""
        pixels = model_kwargs[pixels_key]
        side = self.model.temporal_encoder.output_grid(1, self.config.vision_grid_size)[1]
        if pixels_key == "pixel_values":
            sizes = [side * side] * len(pixels)  # an image is one slot
        else:
            counts = model_kwargs.get("video_frame_counts")
            counts = [pixels.shape[1]] * len(pixels) if counts is None else [int(c) for c in counts]
            grids = [self.model.temporal_encoder.output_grid(c, self.config.vision_grid_size, stride) for c in counts]
            sizes = [slots * s * s for slots, s in grids]
        per_sample = self.model.placeholder_mask(input_ids, model_kwargs.get("inputs_embeds"), token_id).sum(-1)
        rows, next_row = [], 0
        for sample_tokens in per_sample.tolist():
            first = next_row
            while sample_tokens > 0 and next_row < len(sizes):
                sample_tokens -= sizes[next_row]
                next_row += 1
            rows.append(list(range(first, next_row)))
            if sample_tokens != 0 or (len(rows) == len(per_sample) and next_row != len(sizes)):
                raise ValueError(
                    f"The placeholders of {pixels_key} do not line up with the samples of the batch: "
                    f"{per_sample.tolist()} placeholder tokens per sample for items of {sizes} tokens. Build inputs "
                    "with StormProcessor, with the settings passed to generate."
                )
        return rows

    def start_stream(self, processor, **kwargs) -> StormStreamingSession:
        """A session that takes a live video frame by frame and answers questions about it at any moment (a model
        with a unidirectional temporal encoder only). `kwargs`: `max_video_tokens`, `fps`, `temporal_sampling_stride`,
        `temporal_sampling_slot` (see `StormStreamingSession`)."""
        return StormStreamingSession(self, processor, **kwargs)

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        pixel_values: torch.FloatTensor | None = None,
        pixel_values_videos: torch.FloatTensor | None = None,
        video_frame_counts: torch.LongTensor | None = None,
        temporal_sampling_stride=None,
        temporal_sampling_slot=None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        **kwargs,
    ) -> StormCausalLMOutputWithPast:
        cache = pop_cache(kwargs)  # as `cache` or `past_key_values`, see StormModel.forward
        outputs = self.model(
            input_ids=input_ids,
            pixel_values=pixel_values,
            pixel_values_videos=pixel_values_videos,
            video_frame_counts=video_frame_counts,
            temporal_sampling_stride=temporal_sampling_stride,
            temporal_sampling_slot=temporal_sampling_slot,
            attention_mask=attention_mask,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            return_dict=True,
            **cache_kwarg(cache),
            **kwargs,
        )
        hidden_states = outputs.last_hidden_state
        keep = slice(-logits_to_keep, None) if isinstance(logits_to_keep, int) else logits_to_keep
        logits = self.lm_head(hidden_states[:, keep, :])
        loss = None
        if labels is not None:
            loss = self.loss_function(
                logits=logits, labels=labels, vocab_size=self.config.text_config.vocab_size, **kwargs
            )
        return StormCausalLMOutputWithPast(
            loss=loss,
            logits=logits,
            **cache_kwarg(output_cache(outputs)),
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            video_hidden_states=outputs.video_hidden_states,
            image_hidden_states=outputs.image_hidden_states,
        )


__all__ = [
    "StormForConditionalGeneration",
    "StormModel",
    "StormPreTrainedModel",
    "StormTemporalEncoder",
    "StormVisualEncoding",
]
