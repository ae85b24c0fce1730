"""What differs between the transformers releases STORM supports (5.17 to the newest), in one place.

Exported folders run this code on whatever transformers their user has, so a rename in transformers is absorbed
here, by feature detection (never by version number), and the rest of the code base uses these names only.

- 5.24 renamed the KV cache from `past_key_values` to `cache`: in model outputs, in the keyword models take, and in
  what `generate` passes. `CACHE_NAME` is the name the installed release uses; `pop_cache` reads a cache given under
  either name, so callers on any release may pass either.

Hub code: imports only the standard library and transformers' public API.
"""

import dataclasses

from transformers.modeling_outputs import CausalLMOutputWithPast

# The field name transformers' own output classes declare for the KV cache.
CACHE_NAME = "cache" if "cache" in {f.name for f in dataclasses.fields(CausalLMOutputWithPast)} else "past_key_values"
_CACHE_NAMES = ("cache", "past_key_values")


def pop_cache(kwargs: dict):
    """Remove the KV cache from `kwargs`, whichever name it was passed under; None when absent."""
    given = [name for name in _CACHE_NAMES if kwargs.get(name) is not None]
    if len(given) > 1:
        raise ValueError("Pass the KV cache once, as `cache` or as `past_key_values`, not both.")
    values = [kwargs.pop(name, None) for name in _CACHE_NAMES]
    return next((value for value in values if value is not None), None)


def cache_kwarg(cache) -> dict:
    """`{name: cache}` under the name the installed transformers takes."""
    return {CACHE_NAME: cache}


def output_cache(output):
    """The KV cache an output (a model's or `generate`'s) carries, read under the installed release's name."""
    return getattr(output, CACHE_NAME)


__all__ = ["CACHE_NAME", "cache_kwarg", "output_cache", "pop_cache"]
