"""What differs between the transformers releases STORM supports (5.17 to the newest) on the processor side.

Exported folders run this code on whatever transformers their user has, so differences are absorbed here, by
feature detection (never by version number), and the processor uses these names only.

- Text marked as plain text. `CONTROL_MARK_START` ... `CONTROL_MARK_END` wrap text that must be encoded as plain
  text, never as a special token: STORM's chat template wraps the placeholders a user types inside a message, and
  transformers >= 5.23 wraps the control tokens found in messages when `apply_chat_template(...,
  sanitize_control_tokens=True)` is asked for. The characters are the private-use ones transformers uses, so both
  markings are read alike; transformers 5.17 has no marking of its own.
- Output flags. `return_mm_token_type_ids` / `return_text_replacement_offsets` arrive among the text kwargs in 5.17
  and at the top level of the merged kwargs in later releases (text kwargs still accepted there);
  `sanitize_control_tokens` (>= 5.23) arrives among the text kwargs. `pop_processing_flag` reads either place.

Hub code: imports only the standard library.
"""

CONTROL_MARK_START, CONTROL_MARK_END = "\U000f0000", "\U000f0001"


def pop_processing_flag(output_kwargs: dict, name: str) -> bool:
    """Remove flag `name` from merged processor kwargs (its text kwargs and top level); whether it was set."""
    top_level = output_kwargs.pop(name, None)
    in_text = output_kwargs["text_kwargs"].pop(name, None)
    return bool(in_text if in_text is not None else top_level)


__all__ = ["CONTROL_MARK_START", "CONTROL_MARK_END", "pop_processing_flag"]
