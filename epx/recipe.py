"""The recipe: one YAML file, validated before anything heavy loads.

`load_recipe(path, overrides)` reads the file, applies `--set a.b=c` overrides with typed parsing and
returns a `Recipe`; any wrong key or value raises `RecipeError` with one line naming the file, the
dotted key and what was expected. `grpo:` holds TRL `GRPOConfig` fields under their own names,
checked against `epx.grpo_fields` (a snapshot of the installed TRL) so typos fail in milliseconds.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from epx.errors import RecipeError, did_you_mean
from epx.grpo_fields import GRPO_FIELD_TYPES
from epx.stage import StageParams

PAPER_TEMPLATE = (
    "{problem}\nPlease reason step by step, and put your final answer within \\boxed{}."
)

# GRPOConfig fields that epx sets from other sections, so a recipe has one place for each.
GRPO_FIELDS_OWNED_ELSEWHERE = {
    "output_dir": "output_dir (top level)",
    "report_to": "logging.mode",
    "run_name": "logging.run_name",
}


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class LoraSection(Section):
    r: int = Field(16, gt=0, description="LoRA rank.")
    alpha: int = Field(32, gt=0, description="LoRA scaling (lora_alpha).")
    dropout: float = Field(0.05, ge=0.0, lt=1.0, description="Dropout on the LoRA path.")
    target_modules: list[str] | str = Field(
        "all-linear", description="Module names to adapt, or 'all-linear'."
    )


class ModelSection(Section):
    name_or_path: str = Field(
        description="Hub id, local dir, .gguf file, pkg://PACKAGE/FILE, 'tiny-random', or "
        "random:ARCH (random weights of a real shape, e.g. random:qwen2.5-0.5b, for timing)."
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="Weights dtype; auto is float32 on CPU and bfloat16 on a GPU."
    )
    attn_implementation: str | None = Field(
        None, description="eager, sdpa, flash_attention_2, ... (None: transformers' default)."
    )
    trust_remote_code: bool = Field(False, description="Allow model code from the hub.")
    tokenizer: str | None = Field(None, description="Tokenizer path or id if not the model's.")
    lora: LoraSection | None = Field(None, description="Train LoRA adapters (peft) if given.")
    adapter: str | None = Field(None, description="LoRA adapter dir merged into the model on load.")
    seed: int = Field(0, description="Initialisation seed of 'tiny-random'.")


class ArithmeticTask(Section):
    digits: list[int] = Field([1, 2], description="Operand digit counts, drawn uniformly.")
    max_value: int | None = Field(
        None, ge=1, description="Operands uniform in 0..max_value instead (digits then unused)."
    )
    terms: int = Field(2, ge=2, le=6, description="Numbers added per problem.")
    size: int = Field(2000, gt=0, description="Training problems generated.")
    held_out: float = Field(
        0.2,
        gt=0.0,
        lt=1.0,
        description="Share of distinct problems kept out of training for the `arithmetic` "
        "benchmark (chosen by a hash of the sorted operands, whatever the seed).",
    )

    @model_validator(mode="after")
    def _valid_digits(self) -> ArithmeticTask:
        if self.max_value is None and (not self.digits or min(self.digits) < 1):
            raise ValueError("data.task.digits must list digit counts >= 1")
        return self


class DataSection(Section):
    source: str = Field(
        "builtin:arithmetic",
        description="Hub dataset id, a local .jsonl/.parquet path, or builtin:arithmetic.",
    )
    split: str = Field("train", description="Dataset split (hub datasets).")
    problem_field: str = Field("problem", description="Column with the problem text.")
    answer_field: str = Field("answer", description="Column with the gold answer.")
    template: str = Field(PAPER_TEMPLATE, description="Prompt; {problem} is replaced.")
    chat_template: bool | None = Field(
        None, description="Wrap the prompt in the tokenizer's chat template (None: if it has one)."
    )
    system_prompt: str | None = Field(None, description="System message when chat-templated.")
    limit: int | None = Field(None, gt=0, description="Use at most this many problems.")
    shuffle: bool = Field(True, description="Shuffle the problems (with seed).")
    seed: int = Field(0, description="Seed of shuffling and of the built-in task.")
    bad_rows: Literal["error", "skip"] = Field(
        "error",
        description="A row whose problem or answer is missing, null or empty: stop with its "
        "file:line (error), or leave it out and count it (skip).",
    )
    task: ArithmeticTask = Field(default_factory=ArithmeticTask, description="builtin:arithmetic.")

    @model_validator(mode="after")
    def _template_has_problem(self) -> DataSection:
        if "{problem}" not in self.template:
            raise ValueError("data.template must contain '{problem}'")
        return self


class PplSection(Section):
    alpha: float = Field(
        0.01, ge=0.0, description="Scale of the standardised log-PPL (paper: 0.01)."
    )
    clip: tuple[float, float] = Field(
        (0.8, 1.2), description="Clamp of the weight (paper: 0.8-1.2)."
    )
    favour: Literal["low", "high"] = Field(
        "low", description="low: 1 - alpha*w (paper); high: 1 + alpha*w (ablation)."
    )

    @model_validator(mode="after")
    def _ordered_clip(self) -> PplSection:
        if not 0.0 <= self.clip[0] <= 1.0 <= self.clip[1]:
            raise ValueError("shaping.ppl.clip must be [low, high] with low <= 1 <= high")
        return self


class PositionSection(Section):
    alpha: float = Field(0.1, ge=0.0, description="Bonus scale (paper: 0.1).")
    k: float = Field(15.0, gt=0.0, description="Sigmoid steepness (paper: 15).")
    center: float = Field(0.5, ge=0.0, le=1.0, description="Sigmoid centre in relative position.")
    schedule: Literal["always", "window", "plateau"] = Field(
        "plateau",
        description="When the bonus is on: always, a step window, or once plateau begins.",
    )
    window: tuple[int, int] = Field(
        (201, 299), description="Inclusive global-step window (reference: 200 < step < 300)."
    )

    @model_validator(mode="after")
    def _ordered_window(self) -> PositionSection:
        if self.window[0] > self.window[1]:
            raise ValueError("shaping.position.window must be [start, end] with start <= end")
        return self


class ShapingSection(Section):
    method: Literal["none", "ppl", "position", "both"] = Field(
        "none", description="Advantage shaping: none, ppl, position, or both (PPL first)."
    )
    ppl: PplSection = Field(default_factory=PplSection)
    position: PositionSection = Field(default_factory=PositionSection)
    # the interventions: restrict the policy update to a subset of tokens (epx.interventions)
    update_only: Literal["all", "positive", "negative"] = Field(
        "all", description="Update on all tokens, or only positive- / negative-advantage ones."
    )
    max_token_prob: float | None = Field(
        None, gt=0.0, le=1.0, description="Only tokens whose probability is at most this (ref: 0.95)."
    )
    entropy_quantile: float | None = Field(
        None,
        gt=0.0,
        le=1.0,
        description="Only the top fraction of tokens by entropy (TRL's top_entropy_quantile).",
    )
    ppl_quantile: tuple[float, float] | None = Field(
        None, description="Only samples whose in-group log-PPL quantile is in [lo, hi] (0 lowest)."
    )
    position_range: tuple[float, float] | None = Field(
        None, description="Only tokens whose relative position t/|o| is in [lo, hi]."
    )

    @model_validator(mode="after")
    def _ordered_ranges(self) -> ShapingSection:
        for name in ("ppl_quantile", "position_range"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value[0] <= value[1] <= 1.0:
                raise ValueError(f"shaping.{name} must be [lo, hi] with 0 <= lo <= hi <= 1")
        return self

    @property
    def restricts_update(self) -> bool:
        """Whether an intervention other than TRL's entropy quantile drops tokens."""
        return (
            self.update_only != "all"
            or self.max_token_prob is not None
            or self.ppl_quantile is not None
            or self.position_range is not None
        )


class LaunchSection(Section):
    num_processes: int | None = Field(
        None,
        gt=0,
        description="Processes (GPUs) the recipe is meant for: --dry-run checks its batch "
        "geometry for them; a launch with another number says so.",
    )


class SamplingSection(Section):
    dynamic: bool = Field(
        False,
        description="DAPO's dynamic sampling: drop prompt groups whose rewards are all equal and "
        "generate more prompts until the batch is full.",
    )
    max_generation_batches: int = Field(
        10, ge=1, description="Generation rounds a step may take at most (reference: 5-10)."
    )
    metric: Literal["reward", "accuracy"] = Field(
        "reward", description="What must differ within a group: the total reward or correctness."
    )
    tolerance: float = Field(1e-6, ge=0.0, description="Values closer than this are equal.")
    on_exhausted: Literal["error", "train"] = Field(
        "error",
        description="Past the cap: stop with an error (as the reference does) or train on the "
        "groups there are, cycled to fill the batch.",
    )


class AnalysisSection(Section):
    every_n_steps: int = Field(
        10,
        ge=0,
        description="Save a sample of the completions trained at step 1 and every N optimizer "
        "steps (TRL's global steps) for `epx analyze` (0: off).",
    )
    max_samples_per_step: int = Field(64, gt=0, description="Rollouts kept per saved step.")
    token_stats: bool = Field(
        True, description="Also keep per-token ids, entropies, log-probs, positions, advantages."
    )


class RewardFunctionSpec(BaseModel):
    """One reward function of `epx.rewards` by name; other keys are its parameters."""

    model_config = ConfigDict(extra="allow")
    name: str = Field(description="correctness, format or overlong.")
    weight: float = Field(1.0, description="Weight in the summed reward.")

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class RewardSection(Section):
    functions: list[RewardFunctionSpec] = Field(
        default_factory=lambda: [RewardFunctionSpec(name="correctness")],
        description="Reward functions by name, with weight and parameters.",
    )
    max_failure_rate: float = Field(
        0.2, ge=0.0, le=1.0, description="Abort when this fraction of a batch's rewards fail."
    )
    strictness: Literal["final", "boxed"] = Field(
        "final",
        description="Which answer the scorer reads: final (the last box, or an explicit final "
        "statement after it) or boxed (boxes only); also used by the in-training eval.",
    )

    @model_validator(mode="after")
    def _known_reward_names(self) -> RewardSection:
        if not self.functions:
            raise ValueError("reward.functions: at least one reward function is needed")
        from epx.rewards import REWARD_FUNCTIONS

        for spec in self.functions:
            if spec.name not in REWARD_FUNCTIONS:
                raise ValueError(
                    f"unknown reward function '{spec.name}'; known are "
                    f"{', '.join(sorted(REWARD_FUNCTIONS))}{did_you_mean(spec.name, REWARD_FUNCTIONS)}"
                )
        return self


class LoggingSection(Section):
    project: str = Field("epx", description="W&B project.")
    entity: str | None = Field(None, description="W&B entity (team or user).")
    mode: Literal["offline", "online", "disabled"] = Field(
        "offline", description="W&B mode; online needs WANDB_API_KEY or a prior `wandb login`."
    )
    run_name: str | None = Field(None, description="Run name (default: the recipe's file name).")


class EvalSection(Section):
    benches: list[str] = Field(default_factory=list, description="Benchmarks to evaluate on.")
    every_n_steps: int = Field(10, gt=0, description="Evaluate every N global steps.")
    before_training: bool = Field(True, description="Also evaluate at step 0.")
    after_training: bool = Field(True, description="Also evaluate after the last step.")
    n: int = Field(1, gt=0, description="Samples per problem.")
    limit: int | None = Field(None, gt=0, description="First N problems of each benchmark.")
    max_tokens: int | None = Field(None, gt=0, description="Default: grpo.max_completion_length.")
    temperature: float = Field(0.6, ge=0.0, description="Sampling temperature (paper: 0.6).")
    top_p: float = Field(0.95, gt=0.0, le=1.0, description="Nucleus sampling (paper: 0.95).")
    batch_size: int = Field(16, gt=0, description="Samples per generate call (a chunk).")
    seed: int = Field(0, description="Sampling seed, the same at every evaluation of the run.")
    data_dir: str | None = Field(None, description="Benchmark files (default: EPX_DATA_DIR).")


class Recipe(Section):
    model: ModelSection = Field(description="The policy model and its tokenizer.")
    data: DataSection = Field(
        default_factory=DataSection, description="Training problems, gold answers and the prompt."
    )
    grpo: dict[str, Any] = Field(default_factory=dict, description="TRL GRPOConfig fields.")
    shaping: ShapingSection = Field(
        default_factory=ShapingSection, description="The paper's advantage shaping, interventions."
    )
    stage: StageParams = Field(
        default_factory=StageParams, description="The rising/plateau stage detector."
    )
    reward: RewardSection = Field(
        default_factory=RewardSection, description="Reward functions over the answer scorer."
    )
    logging: LoggingSection = Field(default_factory=LoggingSection, description="W&B tracking.")
    eval: EvalSection = Field(default_factory=EvalSection, description="In-training evaluation.")
    analysis: AnalysisSection = Field(
        default_factory=AnalysisSection, description="Rollout records for `epx analyze`."
    )
    sampling: SamplingSection = Field(
        default_factory=SamplingSection, description="DAPO's dynamic sampling."
    )
    launch: LaunchSection = Field(
        default_factory=LaunchSection, description="The launch the recipe is meant for."
    )
    output_dir: str = Field("", description="Checkpoints, metrics.jsonl and W&B files of the run.")
    source: str | None = Field(None, description="The file this recipe was read from.")


@functools.cache
def _grpo_adapter(type_text: str) -> TypeAdapter:
    return TypeAdapter(eval(type_text, {"Any": Any}))


def validate_grpo_section(values: dict[str, Any]) -> dict[str, Any]:
    """Check names and types of GRPOConfig fields; returns the values coerced to their types."""
    checked: dict[str, Any] = {}
    for name, value in values.items():
        if name in GRPO_FIELDS_OWNED_ELSEWHERE:
            raise RecipeError(
                f"grpo.{name}: set by epx; use {GRPO_FIELDS_OWNED_ELSEWHERE[name]} instead"
            )
        if name not in GRPO_FIELD_TYPES:
            raise RecipeError(
                f"grpo.{name}: not a GRPOConfig field{did_you_mean(name, GRPO_FIELD_TYPES)}"
            )
        type_text = GRPO_FIELD_TYPES[name]
        try:
            checked[name] = _grpo_adapter(type_text).validate_python(value)
        except ValidationError as error:
            raise RecipeError(
                f"grpo.{name}: expected {type_text}, got {value!r} ({error.errors()[0]['msg']})"
            ) from None
    return checked


def parse_override(text: str) -> tuple[list[str], Any]:
    """`a.b=c` -> (['a', 'b'], value parsed as YAML, so numbers, booleans and lists are typed)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise RecipeError(f"--set {text}: expected KEY=VALUE, e.g. --set grpo.learning_rate=1e-5")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip().split("."), value


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Set each dotted key of `overrides` in the nested dict `raw` (creating sections as needed)."""
    for text in overrides:
        path, value = parse_override(text)
        node = raw
        for part in path[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise RecipeError(f"--set {text}: '{part}' is not a section")
            node = child
        node[path[-1]] = value
    return raw


def _format_error(error: dict[str, Any], model: type[BaseModel]) -> str:
    location = ".".join(str(part) for part in error["loc"])
    if error["type"] in ("extra_forbidden", "unexpected_keyword_argument"):
        known = _known_keys(model, error["loc"][:-1])
        hint = did_you_mean(str(error["loc"][-1]), known)
        return f"{location}: unknown key{hint or '; valid keys: ' + ', '.join(known)}"
    if error["type"] == "missing":
        return f"{location}: required key is missing"
    message = error["msg"].removeprefix("Value error, ")
    return f"{location}: {message} (got {error.get('input')!r})"


def _known_keys(model: Any, location: tuple[Any, ...]) -> list[str]:
    import dataclasses

    for part in location:
        if isinstance(part, int):
            continue
        annotation = getattr(model, "model_fields", {}).get(part)
        if annotation is None and dataclasses.is_dataclass(model):
            annotation = next(f for f in dataclasses.fields(model) if f.name == part)
        if annotation is None:
            return []
        model = getattr(annotation, "annotation", None) or annotation.type
        model = next(
            (arg for arg in getattr(model, "__args__", ()) if arg is not type(None)), model
        )
    if dataclasses.is_dataclass(model):
        return [f.name for f in dataclasses.fields(model)]
    return list(getattr(model, "model_fields", {}))


def build_recipe(raw: dict[str, Any], source: str = "<recipe>") -> Recipe:
    """Validate a nested dict into a Recipe; errors name `source` and the dotted key."""
    try:
        recipe = Recipe.model_validate({**raw, "source": source})
    except ValidationError as error:
        raise RecipeError(f"{source}: {_format_error(error.errors()[0], Recipe)}") from None
    try:
        recipe.grpo = validate_grpo_section(recipe.grpo)
    except RecipeError as error:
        raise RecipeError(f"{source}: {error}") from None
    if not recipe.output_dir:
        recipe.output_dir = str(Path("runs") / "train" / Path(source).stem)
    return recipe


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (YAML keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise DuplicateKeyError(key, seen[key] + 1, key_node.start_mark.line + 1)
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


class DuplicateKeyError(yaml.YAMLError):
    def __init__(self, key: Any, first: int, again: int) -> None:
        super().__init__(f"key '{key}' given twice (lines {first} and {again})")
        self.line = again


def read_yaml(path: Path) -> Any:
    """A YAML file's contents; RecipeError naming the file and line when it is not valid YAML or
    repeats a key."""
    try:
        return yaml.load(path.read_text(), Loader=_UniqueKeyLoader)
    except DuplicateKeyError as error:
        raise RecipeError(f"{path}: line {error.line}: {error}") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise RecipeError(
            f"{path}:{where} not valid YAML ({getattr(error, 'problem', error)})"
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        raise RecipeError(f"{path}: cannot read ({error})") from None


def load_recipe(path: str | os.PathLike[str], overrides: list[str] | None = None) -> Recipe:
    """Read, override and validate the recipe at `path` (RecipeError on any problem)."""
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"{path}: recipe file not found")
    raw = read_yaml(path) or {}
    if not isinstance(raw, dict):
        raise RecipeError(f"{path}: expected a mapping of sections at the top level")
    raw = apply_overrides(raw, overrides or [])
    return build_recipe(raw, str(path))


def recipe_to_yaml(recipe: Recipe) -> str:
    """The resolved recipe as YAML (what --dry-run prints and each checkpoint stores)."""
    data = recipe.model_dump(mode="json", exclude={"source"})
    data["reward"]["functions"] = [
        {"name": f.name, "weight": f.weight, **f.params} for f in recipe.reward.functions
    ]
    return yaml.safe_dump(data, sort_keys=False)


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1}; lists stay values."""
    if not isinstance(data, dict):
        return {prefix: data}
    flat: dict[str, Any] = {}
    for key, value in data.items():
        flat.update(flatten(value, f"{prefix}{key}." if isinstance(value, dict) else f"{prefix}{key}"))
    return flat
