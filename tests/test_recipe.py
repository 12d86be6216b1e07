"""Recipes: validation errors name file, key and expectation; overrides are typed; the CLI maps errors."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from epx.errors import RecipeError
from epx.grpo_args import check_batch_rules, grpo_kwargs
from epx.grpo_fields import GRPO_FIELD_TYPES
from epx.recipe import apply_overrides, load_recipe, recipe_to_yaml

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "recipes" / "tiny-random.yaml"


def write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def minimal(**sections) -> dict:
    return {"model": {"name_or_path": "tiny-random"}, **sections}


def test_every_shipped_recipe_validates():
    for path in sorted((REPO / "recipes").glob("*.yaml")):
        recipe = load_recipe(path)
        assert recipe.model.name_or_path, path


def test_paper_defaults():
    recipe = load_recipe(TINY, ["shaping.method=ppl"])
    default = type(recipe.shaping)()
    assert (default.ppl.alpha, default.ppl.clip) == (0.01, (0.8, 1.2))
    assert (default.position.alpha, default.position.k, default.position.center) == (0.1, 15.0, 0.5)
    assert default.position.window == (201, 299)  # the reference's 200 < step < 300


def test_unknown_key_names_file_key_and_nearest(tmp_path):
    path = write(tmp_path, minimal(shaping={"metod": "ppl"}))
    with pytest.raises(RecipeError) as error:
        load_recipe(path)
    message = str(error.value)
    assert str(path) in message and "shaping.metod" in message and "did you mean method" in message


def test_wrong_value_says_what_was_expected(tmp_path):
    path = write(tmp_path, minimal(shaping={"method": "pll"}))
    with pytest.raises(
        RecipeError, match=r"shaping\.method: .*'none', 'ppl', 'position' or 'both'"
    ):
        load_recipe(path)


def test_unknown_grpo_field_lists_nearest_valid_names(tmp_path):
    path = write(tmp_path, minimal(grpo={"num_generation": 4}))
    with pytest.raises(
        RecipeError,
        match=r"grpo\.num_generation: not a GRPOConfig field; did you mean num_generations",
    ):
        load_recipe(path)


def test_grpo_fields_owned_elsewhere_are_refused(tmp_path):
    path = write(tmp_path, minimal(grpo={"output_dir": "x"}))
    with pytest.raises(RecipeError, match="use output_dir"):
        load_recipe(path)


def test_set_overrides_are_typed():
    recipe = load_recipe(TINY, ["grpo.learning_rate=2e-5", "shaping.position.window=[3, 9]"])
    assert recipe.grpo["learning_rate"] == pytest.approx(2e-5)
    assert recipe.shaping.position.window == (3, 9)
    with pytest.raises(RecipeError, match=r"grpo\.learning_rate: expected float, got 'fast'"):
        load_recipe(TINY, ["grpo.learning_rate=fast"])
    with pytest.raises(RecipeError, match="expected KEY=VALUE"):
        load_recipe(TINY, ["grpo.learning_rate"])


def test_override_creates_missing_sections():
    raw = apply_overrides({"model": {"name_or_path": "x"}}, ["stage.window=7"])
    assert raw["stage"] == {"window": 7}


def test_unknown_reward_function_lists_known(tmp_path):
    path = write(tmp_path, minimal(reward={"functions": [{"name": "corectness"}]}))
    with pytest.raises(
        RecipeError,
        match=r"unknown reward function 'corectness'; known are .*did you mean correctness",
    ):
        load_recipe(path)


def test_resolved_recipe_round_trips(tmp_path):
    recipe = load_recipe(TINY)
    again = write(tmp_path, yaml.safe_load(recipe_to_yaml(recipe)))
    assert load_recipe(again).model_dump(exclude={"source"}) == recipe.model_dump(
        exclude={"source"}
    )


def test_snapshot_matches_installed_trl():
    from trl import GRPOConfig

    installed = {f.name for f in dataclasses.fields(GRPOConfig) if f.init}
    assert installed == set(GRPO_FIELD_TYPES), "run scripts/snapshot_grpo_fields.py"


def test_cpu_defaults_fix_trl_gpu_defaults():
    kwargs = grpo_kwargs(load_recipe(TINY), has_gpu=False)
    assert kwargs["bf16"] is False and kwargs["gradient_checkpointing"] is False
    assert kwargs["use_cpu"] is True and kwargs["restore_callback_states_from_checkpoint"] is True
    asked = grpo_kwargs(load_recipe(TINY, ["grpo.gradient_checkpointing=true"]), has_gpu=False)
    assert asked["gradient_checkpointing"] is True


@pytest.mark.parametrize(
    ("grpo", "processes", "message"),
    [
        ({"num_generations": 1}, 1, "at least 2 generations"),
        # 3 x 1 process x 1 step = 3, not divisible by 2: valid choices are 3's divisors >= 2
        ({"num_generations": 2, "per_device_train_batch_size": 3}, 1, "valid num_generations: 3,"),
        # 2 x 2 processes = 4: 8 does not divide it
        ({"num_generations": 8, "per_device_train_batch_size": 2}, 2, r"= 4\) must be divisible"),
        ({"num_generations": 4, "per_device_train_batch_size": 4, "bf16": True}, 1, "needs a GPU"),
        (
            {"num_generations": 4, "per_device_train_batch_size": 4, "use_vllm": True},
            1,
            "needs a GPU",
        ),
    ],
)
def test_batch_rules(grpo, processes, message):
    with pytest.raises(RecipeError, match=message):
        check_batch_rules(grpo, has_gpu=False, num_processes=processes)


@pytest.mark.parametrize("name", ["qwen2.5-math-7b.yaml", "qwen2.5-7b.yaml"])
def test_paper_recipes_pass_batch_rules_on_8_gpus(name):
    recipe = load_recipe(REPO / "recipes" / name)
    kwargs = grpo_kwargs(recipe, has_gpu=True, num_processes=8)
    assert (
        kwargs["num_generations"] == 8 and kwargs["beta"] == 0.0 and kwargs["epsilon_high"] == 0.28
    )
    with pytest.raises(RecipeError, match="needs a GPU"):  # bf16 on a CPU-only machine
        grpo_kwargs(recipe, has_gpu=False)


def test_batch_rules_accept_groups_spread_over_processes():
    check_batch_rules(
        {"num_generations": 4, "per_device_train_batch_size": 2}, has_gpu=False, num_processes=2
    )


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "epx.cli", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )


def test_cli_bad_recipe_is_one_line_exit_2(tmp_path):
    path = write(tmp_path, minimal(grpo={"learning_rat": 1e-5}))
    result = run_cli("train", str(path))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "Traceback" not in result.stderr and "learning_rat" in result.stderr


def test_cli_typed_override_error(tmp_path):
    result = run_cli("train", str(TINY), "--set", "grpo.learning_rate=fast")
    assert result.returncode == 2 and "grpo.learning_rate" in result.stderr


def test_cli_missing_recipe(tmp_path):
    result = run_cli("train", str(tmp_path / "nope.yaml"))
    assert result.returncode == 2 and "recipe file not found" in result.stderr


def test_cli_dry_run_prints_recipe_and_grpo_config():
    result = run_cli("train", str(TINY), "--dry-run", "--set", "grpo.learning_rate=3e-4")
    assert result.returncode == 0, result.stderr
    assert "shaping" in result.stdout and "learning_rate: 0.0003" in result.stdout
    assert "bf16: false" in result.stdout


def test_cli_imports_no_heavy_library():
    """`epx --help` / `--version` stay instant because torch & co. load inside commands only."""
    code = "import sys, epx.cli; print(sorted({'torch', 'transformers', 'trl'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert result.stdout.strip() == "[]", result.stdout + result.stderr
    version = run_cli("--version")
    assert version.returncode == 0 and version.stdout.startswith("epx ")
    assert "train" in run_cli("--help").stdout


@pytest.mark.parametrize("name", ["qwen2.5-math-7b.yaml", "qwen2.5-7b.yaml"])
def test_paper_recipes_dry_run_clean_on_a_cpu_machine_with_the_papers_geometry(name):
    """Checked for the machine they are meant for (8 GPUs, bf16): exit 0, the paper's batch
    geometry, and one line on what this machine lacks; only a real launch refuses."""
    from typer.testing import CliRunner

    from epx.cli import app

    result = CliRunner().invoke(app, ["train", str(REPO / "recipes" / name), "--dry-run"])
    assert result.exit_code == 0, result.stderr
    assert "generation batch: 4,096 completions (512 prompts x 8) = 8 per device x 8 process(es) x 64" in result.stdout
    assert "an optimizer step: 256 completions (4 accumulation), 16 optimizer step(s)" in result.stdout
    assert "generation_batch_size: 4096" in result.stdout
    if not torch_has_gpu():
        assert "this machine lacks what the recipe needs to launch: a CUDA GPU (grpo.bf16" in result.stdout
        launch = CliRunner().invoke(app, ["train", str(REPO / "recipes" / name), "--set",
                                          "output_dir=/nonexistent-epx-run"])  # fmt: skip
        assert launch.exit_code == 2 and "grpo.bf16: needs a GPU" in launch.stderr


def torch_has_gpu() -> bool:
    import torch

    return torch.cuda.is_available()
