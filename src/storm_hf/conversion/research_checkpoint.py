"""Reading a research checkpoint (layout in `research_layout`): configs, and tensors read lazily, never unpickled."""

import json
import pickle
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import safe_open
from tqdm.auto import tqdm
from transformers import AutoConfig, PreTrainedConfig

from . import research_layout as layout


class ConversionError(ValueError):
    """A checkpoint or a setting that cannot be converted; the message says what is wrong and what to do."""


# safetensors header dtypes; any other dtype is read from the tensor itself.
_SAFETENSORS_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}


@dataclass(frozen=True)
class TensorInfo:
    shape: tuple[int, ...]
    dtype: torch.dtype


class _SafetensorsFile:
    def __init__(self, path: Path):
        self.path = path
        try:
            self._file = safe_open(path, framework="pt")
        except Exception as error:
            raise ConversionError(f"{path} is not a readable safetensors file ({error}).") from error

    def info(self) -> dict[str, TensorInfo]:
        infos = {}
        for key in self._file.keys():
            view = self._file.get_slice(key)
            dtype = _SAFETENSORS_DTYPES.get(view.get_dtype()) or self._file.get_tensor(key).dtype
            infos[key] = TensorInfo(tuple(view.get_shape()), dtype)
        return infos

    def get(self, key: str) -> torch.Tensor:
        return self._file.get_tensor(key)


class _PickledFile:
    """A `.pt` / `.bin` state dict, loaded with `torch.load(weights_only=True)`: tensors only, never other objects."""

    def __init__(self, path: Path):
        self.path = path
        try:
            loaded = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except pickle.UnpicklingError as error:
            lines = [line.strip() for line in str(error).splitlines() if line.strip()]
            reason = next((line for line in lines if "WeightsUnpickler error" in line), lines[0] if lines else "")
            raise ConversionError(
                f"{path} holds pickled objects other than tensors, which storm-hf refuses to unpickle "
                f"(torch.load(weights_only=True) says: {reason}). Re-save the state dict as tensors only, e.g. "
                "`safetensors.torch.save_file(state_dict, 'model.safetensors')` where you trust the file."
            ) from error
        except RuntimeError as error:
            raise ConversionError(f"{path} is not a readable torch state dict ({error}).") from error
        self._tensors = self._unwrap(loaded)

    def _unwrap(self, loaded) -> dict[str, torch.Tensor]:
        while isinstance(loaded, dict) and len(loaded) == 1 and next(iter(loaded)) in layout.STATE_DICT_WRAPPER_KEYS:
            loaded = next(iter(loaded.values()))
        if not isinstance(loaded, dict):
            raise ConversionError(f"{self.path} holds a {type(loaded).__name__}, not a state dict (name -> tensor).")
        other = sorted(f"{key} ({type(value).__name__})" for key, value in loaded.items() if not torch.is_tensor(value))
        if other:
            raise ConversionError(
                f"{self.path} holds entries that are not tensors: {', '.join(other)}. Save only the model's state dict."
            )
        return loaded

    def info(self) -> dict[str, TensorInfo]:
        return {key: TensorInfo(tuple(t.shape), t.dtype) for key, t in self._tensors.items()}

    def get(self, key: str) -> torch.Tensor:
        return self._tensors[key]


def _open_weight_file(path: Path):
    if path.name.endswith(layout.SAFETENSORS_SUFFIXES):
        return _SafetensorsFile(path)
    if path.name.endswith(layout.PICKLE_SUFFIXES):
        return _PickledFile(path)
    raise ConversionError(
        f"{path} is not a weights file storm-hf reads: use "
        f"{', '.join(layout.SAFETENSORS_SUFFIXES + layout.PICKLE_SUFFIXES)}."
    )


def weight_files(folder: Path) -> list[Path]:
    """The weight files of a folder: the shards an index names, else its safetensors files, else its .pt/.bin files."""
    indexes = sorted(folder.glob(f"*{layout.INDEX_SUFFIX}"))
    if len(indexes) > 1:
        raise ConversionError(f"{folder} has several weight indexes ({', '.join(p.name for p in indexes)}); keep one.")
    if indexes:
        weight_map = json.loads(indexes[0].read_text()).get("weight_map")
        if not isinstance(weight_map, dict):
            raise ConversionError(f"{indexes[0]} has no weight_map: it is not a sharded checkpoint index.")
        shards = [folder / name for name in sorted(set(weight_map.values()))]
        absent = [shard.name for shard in shards if not shard.is_file()]
        if absent:
            raise ConversionError(f"{indexes[0]} names shards that are not in {folder}: {', '.join(absent)}.")
        return shards
    for suffixes in (layout.SAFETENSORS_SUFFIXES, layout.PICKLE_SUFFIXES):
        files = sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith(suffixes))
        if files:
            return files
    raise ConversionError(
        f"{folder} has no weights: expected *.safetensors (or a sharded index), or a .pt/.pth/.bin state dict."
    )


@dataclass
class TensorStore:
    """Named tensors spread over files, read on demand. `read(name)` returns the tensor as stored."""

    infos: dict[str, TensorInfo] = field(default_factory=dict)
    _where: dict[str, tuple[object, str]] = field(default_factory=dict)

    @classmethod
    def from_files(cls, files: list[Path], progress: bool = True, desc: str = "Loading") -> "TensorStore":
        store = cls()
        for path in tqdm(files, desc=desc, unit="file", disable=not progress):
            reader = _open_weight_file(path)
            for key, info in reader.info().items():
                if key in store.infos:
                    other = store._where[key][0].path
                    raise ConversionError(f"Tensor {key!r} is stored twice, in {other} and in {path}; keep one copy.")
                store.infos[key] = info
                store._where[key] = (reader, key)
        return store

    def split(self, prefix: str) -> "TensorStore":
        """The tensors whose names start with `prefix`, renamed without it (and removed from this store)."""
        part = TensorStore()
        for name in [n for n in self.infos if n.startswith(prefix)]:
            part.infos[name[len(prefix) :]] = self.infos.pop(name)
            part._where[name[len(prefix) :]] = self._where.pop(name)
        return part

    def read(self, name: str) -> torch.Tensor:
        reader, key = self._where[name]
        return reader.get(key)

    def as_state_dict(self) -> dict[str, torch.Tensor]:
        return {name: self.read(name) for name in self.infos}


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise ConversionError(f"{path} is missing: a research checkpoint needs it (see docs/conversion.md).")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ConversionError(f"{path} is not valid JSON ({error}).") from error


_SUB_FOLDERS = ", ".join(f"{part.name}/" for part in layout.PARTS)


def _part_config(where, build) -> PreTrainedConfig:
    try:
        return build()
    except (OSError, ValueError) as error:
        raise ConversionError(f"The config of {where} cannot be read by transformers: {error}") from error


def _has_tokenizer(folder: Path) -> bool:
    return (folder / "tokenizer_config.json").is_file() or (folder / "tokenizer.json").is_file()


@dataclass
class ResearchCheckpoint:
    """A research checkpoint opened for conversion.

    `tensors[part.name]` holds each part's tensors under the part's own names (as in its sub-folder);
    `part_dirs[part.name]` is the part's sub-folder in the folder layout (None in the single-file layout);
    `leftover` holds single-file tensors that belong to no part.
    """

    root: Path
    settings: dict  # the top config over the projector config: where STORM's keys are looked up
    part_configs: dict[str, PreTrainedConfig]
    tensors: dict[str, TensorStore]
    part_dirs: dict[str, Path | None]
    tokenizer_dir: Path
    leftover: TensorStore

    @classmethod
    def open(cls, path, tokenizer=None, progress: bool = True) -> "ResearchCheckpoint":
        path = Path(path)
        if not path.exists():
            raise ConversionError(f"{path} does not exist: pass the research checkpoint folder.")
        root = path.parent if path.is_file() else path
        present = [part.name for part in layout.PARTS if (root / part.name).is_dir()]
        if path.is_dir() and present:
            return cls._open_folders(root, present, tokenizer, progress)
        try:
            files = [path] if path.is_file() else weight_files(root)
        except ConversionError as error:
            raise ConversionError(
                f"{root} is not a research checkpoint: it has no {_SUB_FOLDERS} sub-folders, and {error}"
            ) from error
        return cls._open_single_file(root, files, tokenizer, progress)

    @classmethod
    def _open_folders(cls, root: Path, present: list[str], tokenizer, progress: bool) -> "ResearchCheckpoint":
        absent = [part.name for part in layout.PARTS if part.name not in present]
        if absent:
            raise ConversionError(
                f"{root} has {', '.join(p + '/' for p in present)} but not {', '.join(p + '/' for p in absent)}: a "
                f"research checkpoint folder needs all of {_SUB_FOLDERS} (or holds one state-dict file instead)."
            )
        config = _read_json(root / layout.TOP_CONFIG_FILE)
        dirs = {part.name: root / part.name for part in layout.PARTS}
        projector_config = _read_json(dirs[layout.PROJECTOR.name] / "config.json")
        part_configs = {
            part.name: _part_config(dirs[part.name], lambda folder=dirs[part.name]: AutoConfig.from_pretrained(folder))
            for part in (layout.VISION, layout.LLM)
        }
        files = {part.name: weight_files(dirs[part.name]) for part in layout.PARTS}
        tensors = {
            part.name: TensorStore.from_files(files[part.name], progress, desc=f"Loading {part.name}")
            for part in layout.PARTS
        }
        tokenizer_dir = Path(tokenizer) if tokenizer else dirs[layout.LLM.name]
        return cls(
            root=root,
            settings={**projector_config, **config},
            part_configs=part_configs,
            tensors=tensors,
            part_dirs=dirs,
            tokenizer_dir=_checked_tokenizer_dir(tokenizer_dir),
            leftover=TensorStore(),
        )

    @classmethod
    def _open_single_file(cls, root: Path, files: list[Path], tokenizer, progress: bool) -> "ResearchCheckpoint":
        config = _read_json(root / layout.TOP_CONFIG_FILE)
        part_configs = {}
        for part in (layout.VISION, layout.LLM):
            value = config.get(part.config_key)
            if not isinstance(value, dict) or "model_type" not in value:
                raise ConversionError(
                    f"{root / layout.TOP_CONFIG_FILE} has no {part.config_key!r} config dict with a model_type, which "
                    f"a single state-dict checkpoint needs to build its {part.description}; or use the folder layout "
                    f"with a {part.name}/ sub-folder."
                )
            values = {k: v for k, v in value.items() if k != "model_type"}
            where = f"{part.config_key} in {root / layout.TOP_CONFIG_FILE}"
            part_configs[part.name] = _part_config(where, lambda: AutoConfig.for_model(value["model_type"], **values))
        projector_config = config.get(layout.PROJECTOR.config_key)
        everything = TensorStore.from_files(files, progress)
        tensors = {part.name: everything.split(part.prefix) for part in layout.PARTS}
        return cls(
            root=root,
            settings={**(projector_config if isinstance(projector_config, dict) else {}), **config},
            part_configs=part_configs,
            tensors=tensors,
            part_dirs={part.name: None for part in layout.PARTS},
            tokenizer_dir=_checked_tokenizer_dir(Path(tokenizer) if tokenizer else root),
            leftover=everything,
        )

    def setting(self, key: str, default):
        """(value, True) for a research config key that is present, (default, False) otherwise."""
        return (self.settings[key], True) if key in self.settings else (default, False)


def _checked_tokenizer_dir(folder: Path) -> Path:
    if not _has_tokenizer(folder):
        raise ConversionError(
            f"{folder} holds no tokenizer (tokenizer_config.json / tokenizer.json): pass --tokenizer with the language "
            "model's tokenizer folder."
        )
    return folder
