"""Build a model and tokenizer from any reference: the one place training and evaluation load models.

References: a hub id, a local dir, a `.gguf` file (dequantised once and cached), `tiny-random`, a
recipe YAML (its `model` section), or an `epx train` output dir (its latest checkpoint, LoRA adapters
merged for generation).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from epx.checkpoints import CHECKPOINT_PATTERN
from epx.errors import ModelError
from epx.hub import hub_offline, prepare_hub_access
from epx.recipe import DataSection, ModelSection
from epx.run_dir import RunDir

TINY_RANDOM = "tiny-random"
RANDOM_PREFIX = "random:"  # random:qwen2.5-0.5b -> that architecture's shape, random weights


def cache_dir() -> Path:
    """Where converted checkpoints are kept (EPX_CACHE_DIR, default ~/.cache/epx)."""
    return Path(os.environ.get("EPX_CACHE_DIR", Path.home() / ".cache" / "epx"))


def latest_checkpoint(run_dir: str | os.PathLike[str]) -> Path | None:
    """The newest usable `checkpoint-N` folder under `run_dir` (see `epx.checkpoints`), or None."""
    from epx.checkpoints import latest_usable

    return latest_usable(run_dir)[0]


def resolve_package_path(ref: str) -> str:
    """`pkg://PACKAGE/FILE` -> the file's path inside the installed Python package; else `ref`."""
    if not ref.startswith("pkg://"):
        return ref
    import importlib.util

    package, _, relative = ref.removeprefix("pkg://").partition("/")
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        pip_name = package.replace("_", "-")
        raise ModelError(f"{ref}: package '{package}' is not installed (pip install {pip_name})")
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.exists():
        raise ModelError(f"{ref}: no file '{relative}' in package '{package}'")
    return str(path)


def resolve_model_ref(ref: str) -> ModelSection:
    """Turn a --model argument into a model section (see the module docstring for what it takes)."""
    return resolve_reference(ref)[0]


def resolve_reference(
    ref: str, notes: list[str] | None = None
) -> tuple[ModelSection, DataSection | None]:
    """The model section of a reference and, when it carries a recipe (a recipe file, an `epx
    train` output dir or one of its checkpoints), the data section the model was trained with.
    A run dir's newer checkpoints that are cut are passed over, each with a line in `notes`."""
    from epx.checkpoints import latest_usable
    from epx.recipe import load_recipe

    path = Path(ref)
    if path.suffix in (".yaml", ".yml"):
        recipe = load_recipe(path)
        return recipe.model, recipe.data
    if not RunDir(path).is_run():
        return ModelSection(name_or_path=ref), None
    checkpoint, passed = (path, []) if CHECKPOINT_PATTERN.match(path.name) else latest_usable(path)
    if checkpoint is not None and notes is not None:
        notes += [f"{path / name} is unusable ({why}): using {checkpoint.name}" for name, why in passed]
    if checkpoint is None:
        raise ModelError(
            f"{path}: an epx train output dir without any complete checkpoint-N folder"
        )
    recipe = load_recipe(RunDir(checkpoint).recipe)  # a checkpoint keeps the run's recipe
    return _checkpoint_model(recipe.model, checkpoint), recipe.data


def _checkpoint_model(model: ModelSection, checkpoint: Path) -> ModelSection:
    """The recipe's model section pointed at a checkpoint (adapters merged on load if LoRA)."""
    from epx.checkpoints import FSDP_MODEL_DIRS, WEIGHT_FILES

    weights = any((checkpoint / name).is_file() for name in WEIGHT_FILES)
    if not weights and any(checkpoint.glob(FSDP_MODEL_DIRS)):
        raise ModelError(
            f"{checkpoint}: FSDP shards (pytorch_model_fsdp_0/) that only `epx train --resume` "
            f"reads; evaluate {checkpoint.parent / 'final'} (full weights, written at the end "
            "of training)"
        )
    if (checkpoint / "adapter_config.json").is_file():
        return model.model_copy(update={"adapter": str(checkpoint), "lora": None})
    tokenizer = str(checkpoint) if (checkpoint / "tokenizer_config.json").is_file() else None
    return model.model_copy(
        update={"name_or_path": str(checkpoint), "tokenizer": tokenizer, "lora": None}
    )


def has_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def torch_dtype(name: str) -> Any:
    """'auto' -> float32 on CPU, bfloat16 on a GPU that supports it; otherwise the named dtype."""
    import torch

    if name == "auto":
        gpu_bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        return torch.bfloat16 if gpu_bf16 else torch.float32
    return getattr(torch, name)


def load_tokenizer(cfg: ModelSection, *, padding_side: str = "left") -> Any:
    """The tokenizer of `cfg`, with a pad token (eos if it has none) and the given padding side."""
    from transformers import AutoTokenizer

    if _is_random(cfg) and cfg.tokenizer is None:
        from epx.tiny import QWEN_VOCAB_SIZE, build_tiny_tokenizer

        tokenizer = build_tiny_tokenizer(
            None if cfg.name_or_path == TINY_RANDOM else QWEN_VOCAB_SIZE
        )
    else:
        source = resolve_package_path(cfg.tokenizer or cfg.name_or_path)
        if source.endswith(".gguf"):
            source = str(_dequantised_gguf(Path(source)))
        check_tokenizer_files(source)
        tokenizer = _from_pretrained(AutoTokenizer, source, trust_remote_code=cfg.trust_remote_code)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = padding_side
    return tokenizer


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json",
                   "vocab.txt", "spiece.model")  # fmt: skip


def check_tokenizer_files(source: str) -> None:
    """A local folder given as a tokenizer holds tokenizer files (transformers would otherwise
    build an empty tokenizer from config.json alone, and generation fail on empty prompts)."""
    path = Path(source).expanduser()
    if (
        path.is_dir()
        and any(path.iterdir())  # an empty folder: check_model_source says so
        and not any((path / name).is_file() for name in TOKENIZER_FILES)
    ):
        raise ModelError(
            f"{source}: no tokenizer files ({', '.join(TOKENIZER_FILES[:2])}, ...): save the "
            "tokenizer with the model, or name one in the recipe's model.tokenizer"
        )


def _is_random(cfg: ModelSection) -> bool:
    return cfg.name_or_path == TINY_RANDOM or cfg.name_or_path.startswith(RANDOM_PREFIX)


def _random_shape(cfg: ModelSection) -> dict[str, Any] | None:
    if cfg.name_or_path == TINY_RANDOM:
        return None
    from epx.tiny import ARCHITECTURES

    name = cfg.name_or_path.removeprefix(RANDOM_PREFIX)
    if name not in ARCHITECTURES:
        raise ModelError(
            f"unknown random architecture '{name}'; known are {', '.join(sorted(ARCHITECTURES))}"
        )
    return ARCHITECTURES[name]


def load_model(cfg: ModelSection, tokenizer: Any, *, merge_adapter: bool = True) -> Any:
    """The causal LM of `cfg` in its dtype (adapters in `cfg.adapter` merged when asked)."""
    dtype = torch_dtype(cfg.dtype)
    if _is_random(cfg):
        from epx.tiny import build_tiny_model

        model = build_tiny_model(tokenizer, seed=cfg.seed, shape=_random_shape(cfg)).to(dtype)
    else:
        from transformers import AutoModelForCausalLM

        source = resolve_package_path(cfg.name_or_path)
        if source.endswith(".gguf"):
            source = str(_dequantised_gguf(Path(source)))
        kwargs: dict[str, Any] = {"dtype": dtype, "trust_remote_code": cfg.trust_remote_code}
        if cfg.attn_implementation:
            kwargs["attn_implementation"] = cfg.attn_implementation
        model = _from_pretrained(AutoModelForCausalLM, source, **kwargs)
    if cfg.adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, cfg.adapter)
        if merge_adapter:
            model = model.merge_and_unload()
    return model


def load_model_and_tokenizer(
    cfg: ModelSection, *, device: Any = None, for_generation: bool = True
) -> tuple[Any, Any]:
    """Model and tokenizer of `cfg`; left padding for generation, right for training."""
    tokenizer = load_tokenizer(cfg, padding_side="left" if for_generation else "right")
    model = load_model(cfg, tokenizer)
    if device is not None:
        model = model.to(device)
    if for_generation:
        model.eval()
    return model, tokenizer


def lora_config(cfg: ModelSection) -> Any:
    """The peft LoraConfig of the recipe's `model.lora`, or None."""
    if cfg.lora is None:
        return None
    from peft import LoraConfig

    return LoraConfig(
        r=cfg.lora.r,
        lora_alpha=cfg.lora.alpha,
        lora_dropout=cfg.lora.dropout,
        target_modules=cfg.lora.target_modules,
        task_type="CAUSAL_LM",
    )


HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def _looks_like_path(source: str) -> bool:
    """A reference written as a path (never a hub id): absolute, relative, home, or nested."""
    return source.startswith(("/", ".", "~")) or source.count("/") > 1 or "\\" in source


def check_model_source(source: str) -> None:
    """Fail in one line, before transformers tries, when `source` cannot be a model: a local
    folder with cut weights, a path that does not exist, or a hub id while the hub is
    unreachable (then only the local hub cache is used: HF_HUB_OFFLINE)."""
    from epx.checkpoints import SHARD_INDEX, checkpoint_problem, safetensors_problem

    path = Path(source).expanduser()
    if path.is_dir():
        if not any(path.iterdir()):
            raise ModelError(
                f"{source}: the folder is empty (a model folder holds config.json, its weights "
                "and tokenizer files)"
            )
        if (path / "trainer_state.json").is_file():
            problem = checkpoint_problem(path)
        elif (path / SHARD_INDEX).is_file() or not (path / "model.safetensors").is_file():
            problem = None  # sharded or another format: transformers reads it
        else:
            problem = safetensors_problem(path / "model.safetensors")
        if problem:
            raise ModelError(f"{source}: the model cannot be loaded: {problem}")
        return
    if path.exists():
        return
    if _looks_like_path(source) or not HUB_ID.match(source):
        raise ModelError(f"{source}: no such local file or folder (and not a hub id owner/name)")
    prepare_hub_access()


def _from_pretrained(loader: Any, source: str, **kwargs: Any) -> Any:
    """`loader.from_pretrained` with a one-line ModelError instead of a hub traceback."""
    check_model_source(source)
    try:
        return loader.from_pretrained(source, **kwargs)
    except Exception as error:  # OSError, ValueError, SafetensorError, ...: all one line
        local = Path(source).exists()
        if local:
            where = "local path"
        elif hub_offline():
            where = "hub id (the hub is unreachable and it is not in the local hub cache)"
        else:
            where = "hub id"
        text = str(error).strip()
        first_line = text.splitlines()[0] if text else type(error).__name__
        raise ModelError(f"cannot load '{source}' as a {where}: {first_line}") from None


@contextlib.contextmanager
def _gguf_bar_off() -> Iterator[None]:
    """transformers' GGUF converter draws a tqdm bar of its own: epx shows a status line."""
    import functools

    from transformers import modeling_gguf_pytorch_utils as gguf_utils

    bar = gguf_utils.tqdm
    gguf_utils.tqdm = functools.partial(bar, disable=True)
    try:
        yield
    finally:
        gguf_utils.tqdm = bar


def _dequantised_gguf(gguf_path: Path) -> Path:
    """Convert a .gguf file once to an ordinary float32 checkpoint in the cache; return its dir.

    Loading with `gguf_file=` alone leaves the model flagged as quantised (Trainer refuses it), so
    the weights are loaded with `GgufConfig(dequantize=True)` and saved with the tokenizer.
    """
    if not gguf_path.is_file():
        raise ModelError(f"{gguf_path}: GGUF file not found")
    stat = gguf_path.stat()
    digest = hashlib.sha256(f"{gguf_path.resolve()}:{stat.st_size}:{stat.st_mtime}".encode())
    target = cache_dir() / "gguf" / f"{gguf_path.stem}-{digest.hexdigest()[:12]}"
    if (target / "config.json").is_file() and (target / "tokenizer_config.json").is_file():
        return target
    from rich.console import Console
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    with (
        Console(stderr=True).status(f"Dequantising {gguf_path.name} (once; cached in {target})"),
        _gguf_bar_off(),
    ):
        folder, name = str(gguf_path.parent), gguf_path.name
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        model = AutoModelForCausalLM.from_pretrained(
            folder, gguf_file=name, quantization_config=GgufConfig(dequantize=True)
        )
        partial = target.with_name(target.name + ".partial")
        model.save_pretrained(partial)
        tokenizer.save_pretrained(partial)
        partial.rename(target)
    return target
