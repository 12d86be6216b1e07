"""EpxGRPOTrainer on the real tiny model through the real TRL trainer.

- method none: loss and gradients equal the parent GRPOTrainer's on the same batch;
- shaping on: loss and gradients equal the parent's given the formula's advantages (computed
  here independently, with loops) directly: TRL's loss used exactly those;
- TRL's old log-probs are used when TRL computed them (no extra forward).
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import torch
from trl import GRPOTrainer
from trl.trainer.utils import shuffle_sequence_dict

from epx.recipe import load_recipe
from epx.train import build_trainer

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "recipes" / "tiny-random.yaml"
G = 4  # num_generations of the tiny recipe


def char_sum_reward(completions: list[str], **kwargs) -> list[float]:
    """A deterministic reward that varies within a group (random text -> varied sums)."""
    return [float(sum(map(ord, text)) % 5) for text in completions]


def make_trainer(tmp_path: Path, *overrides: str):
    recipe = load_recipe(
        TINY, [f"output_dir={tmp_path / 'run'}", "logging.mode=disabled", *overrides]
    )
    trainer = build_trainer(recipe, reward_funcs=[char_sum_reward])
    trainer.model.train()
    trainer.current_gradient_accumulation_steps = 1
    return trainer


def batch_of(trainer) -> list[dict]:
    """Two prompts, each repeated G times, as TRL's sampler hands them over."""
    rows = [trainer.train_dataset[i] for i in range(2)]
    return [row for row in rows for _ in range(G)]


def generate(trainer, inputs, seed: int = 0) -> dict:
    torch.manual_seed(seed)
    return trainer._generate_and_score_completions(copy.deepcopy(inputs))


def loss_and_grads(trainer, output) -> tuple[torch.Tensor, list[torch.Tensor]]:
    trainer.model.zero_grad()
    loss = trainer._compute_loss(trainer.model, output)
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in trainer.model.parameters() if p.grad is not None]


def parent_of(trainer) -> GRPOTrainer:
    """A plain TRL GRPOTrainer with an identical copy of the model and the same arguments."""
    parent = GRPOTrainer(
        model=copy.deepcopy(trainer.model),
        reward_funcs=[char_sum_reward],
        args=trainer.args,
        train_dataset=trainer.train_dataset,
        processing_class=trainer.processing_class,
    )
    parent.model.train()
    parent.current_gradient_accumulation_steps = 1
    return parent


def test_method_none_equals_parent_loss_and_gradients(tmp_path):
    trainer = make_trainer(tmp_path, "shaping.method=none")
    parent = parent_of(trainer)
    inputs = batch_of(trainer)
    ours, theirs = generate(trainer, inputs), generate(parent, inputs)
    assert torch.equal(ours["completion_ids"], theirs["completion_ids"])
    assert ours["advantages"].abs().sum() > 0, "the test needs non-zero advantages"
    assert torch.equal(ours["advantages"], theirs["advantages"])
    loss, grads = loss_and_grads(trainer, ours)
    parent_loss, parent_grads = loss_and_grads(parent, theirs)
    assert torch.equal(loss, parent_loss)
    assert len(grads) == len(parent_grads) > 0
    for ours_grad, parent_grad in zip(grads, parent_grads, strict=True):
        assert torch.equal(ours_grad, parent_grad)


def reference_logps(model, output, temperature: float) -> torch.Tensor:
    """Token log-probs of the completions by a plain forward (not TRL's code path)."""
    ids = torch.cat([output["prompt_ids"], output["completion_ids"]], dim=1)
    attention = torch.cat([output["prompt_mask"], output["completion_mask"]], dim=1)
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=attention).logits.float()
    prompt_length = output["prompt_ids"].size(1)
    logits = logits[:, prompt_length - 1 : -1] / temperature
    return torch.log_softmax(logits, -1).gather(-1, output["completion_ids"].unsqueeze(-1))[..., 0]


def formula_advantages(adv, logps, mask, alpha_ppl, alpha_pos, k=15.0, c=0.5) -> torch.Tensor:
    """PAPER.md written out with loops: PPL weight (IQR, pop. std, floor, clamp), then position."""
    B, T = mask.shape
    log_ppl = [-(logps[i][mask[i].bool()]).sum().item() / mask[i].sum().item() for i in range(B)]
    weights = []
    for g in range(B // G):
        group = torch.tensor(log_ppl[g * G : (g + 1) * G], dtype=torch.float64)
        q1, q3 = torch.quantile(group, 0.25).item(), torch.quantile(group, 0.75).item()
        low, high = q1 - 1.5 * (q3 - q1), q3 + 1.5 * (q3 - q1)
        kept = [v for v in group.tolist() if low <= v <= high] or group.tolist()
        mean = sum(kept) / len(kept)
        std = math.sqrt(sum((v - mean) ** 2 for v in kept) / len(kept))
        std = 1.0 if std <= 1e-6 else std
        weights += [min(max(1 - alpha_ppl * (v - mean) / std, 0.8), 1.2) for v in group.tolist()]
    expected = torch.zeros(B, T, dtype=torch.float64)
    for i in range(B):
        length = int(mask[i].sum())
        a = adv[i].item() * weights[i]
        for t in range(length):
            bonus = min(alpha_pos / (1 + math.exp(-k * (t / length - c))), 0.5 * abs(a))
            expected[i, t] = a + math.copysign(bonus, a) if a != 0 else 0.0
    return expected


def shuffled(output: dict, seed: int) -> tuple[dict, torch.Tensor]:
    """The batch with its rows shuffled as TRL shuffles them, and the new row order."""
    torch.manual_seed(seed)
    batch = shuffle_sequence_dict({**output, "order": torch.arange(output["advantages"].size(0))})
    return batch, batch.pop("order")


def the_loss_used(trainer, parent, shaped: dict, plain: dict, expected: torch.Tensor, seed: int = 7):
    """Our loss and gradients on the shaped batch (shuffled as TRL does; shaping may happen in
    the loss's own forward) equal the parent's on the plain batch given `expected` (B, T)
    advantages directly: so TRL's loss used exactly those advantages."""
    ours, order = shuffled(shaped, seed)
    theirs, same = shuffled({k: v for k, v in plain.items() if not k.startswith("epx_")}, seed)
    assert torch.equal(order, same) and not torch.equal(order, torch.arange(len(order)))
    theirs["advantages"] = expected[order].to(plain["advantages"].dtype)
    loss, grads = loss_and_grads(trainer, ours)
    parent_loss, parent_grads = loss_and_grads(parent, theirs)
    torch.testing.assert_close(loss, parent_loss, atol=1e-7, rtol=1e-5)
    assert len(grads) == len(parent_grads) > 0
    for grad, parent_grad in zip(grads, parent_grads, strict=True):
        torch.testing.assert_close(grad, parent_grad, atol=1e-7, rtol=1e-4)


PATHS = {
    # TRL keeps no old log-probs, one generation batch per step: weights from the loss's forward
    "loss-forward": [],
    # two micro-batches per generation batch, no old log-probs: one extra no-grad forward
    "extra-forward": ["grpo.steps_per_generation=2", "grpo.gradient_accumulation_steps=2"],
    # TRL computes old log-probs (generation every 2 micro-batches, 1 accumulation step)
    "trl-old-logps": ["grpo.steps_per_generation=2", "grpo.per_device_train_batch_size=4"],
}


@pytest.mark.parametrize("path", list(PATHS))
@pytest.mark.parametrize("method", ["ppl", "position", "both"])
def test_advantages_reaching_the_loss_are_the_formulas(tmp_path, method, path):
    overrides = [
        f"shaping.method={method}",
        "shaping.ppl.alpha=0.3",
        "shaping.position.schedule=always",
    ]
    trainer = make_trainer(tmp_path, *overrides, *PATHS[path])
    parent = parent_of(trainer)
    inputs = batch_of(trainer)
    shaped, plain = generate(trainer, inputs), generate(parent, inputs)
    assert torch.equal(shaped["completion_ids"], plain["completion_ids"])
    mask = plain["completion_mask"]
    logps = reference_logps(parent.model, plain, trainer.args.temperature)
    alpha_ppl = 0.3 if method in ("ppl", "both") else 0.0
    alpha_pos = 0.1 if method in ("position", "both") else 0.0
    expected = formula_advantages(plain["advantages"], logps, mask, alpha_ppl, alpha_pos)
    the_loss_used(trainer, parent, shaped, plain, expected)
    if method != "position":  # the weights moved something: the test is not vacuous
        assert not torch.allclose(expected, plain["advantages"].unsqueeze(1).double() * mask)


def test_default_setup_needs_no_extra_forward(tmp_path):
    trainer = make_trainer(tmp_path, "shaping.method=ppl")
    calls = []
    trainer._behaviour_logps = lambda output: calls.append(1)  # must not be reached
    output = generate(trainer, batch_of(trainer))
    assert "old_per_token_logps" not in output and output["advantages"].dim() == 1
    loss_and_grads(trainer, output)  # shaped in the loss's own forward
    assert output["advantages"].shape == output["completion_mask"].shape and not calls


def test_trl_old_logps_are_used_without_extra_forward(tmp_path):
    trainer = make_trainer(tmp_path, "shaping.method=ppl", *PATHS["trl-old-logps"])
    calls = []
    trainer._behaviour_logps = lambda output: calls.append(1)  # must not be reached
    output = generate(trainer, batch_of(trainer))
    assert "old_per_token_logps" in output and not calls
    assert output["advantages"].shape == output["completion_mask"].shape


def test_position_window_schedule_uses_the_step_being_trained(tmp_path):
    trainer = make_trainer(
        tmp_path, "shaping.method=position", "shaping.position.schedule=window",
        "shaping.position.window=[3, 4]",
    )  # fmt: skip
    active = []
    for global_step in range(6):  # steps being trained: 1..6
        trainer.state.global_step = global_step
        active.append(trainer.position_active())
    assert active == [False, False, True, True, False, False]


def test_plateau_schedule_follows_the_stage_detector(tmp_path):
    trainer = make_trainer(tmp_path, "shaping.method=position", "shaping.position.schedule=plateau")
    assert not trainer.position_active()
    trainer.stage_callback().tracker.plateau_step = 7  # as the detector sets it
    assert trainer.position_active()


@pytest.mark.parametrize(
    ("overrides", "keeps"),
    [
        (["shaping.update_only=negative"], lambda a, t, n, p, q: a < 0),
        (["shaping.update_only=positive", "shaping.position_range=[0.5, 1.0]"],
         lambda a, t, n, p, q: a > 0 and t / n >= 0.5),
        (["shaping.max_token_prob=0.0099"], lambda a, t, n, p, q: p <= 0.0099),  # ~1/101 each
        (["shaping.ppl_quantile=[0.0, 0.5]"], lambda a, t, n, p, q: q <= 0.5),
    ],
    ids=["negative only", "positive, second half", "token prob <= 0.0099", "low-PPL half"],
)  # fmt: skip
def test_interventions_keep_exactly_their_tokens_in_the_loss(tmp_path, overrides, keeps):
    """Written out by hand per token: TRL's advantage where the intervention keeps the token,
    0 elsewhere (method none: no shaping on top)."""
    trainer = make_trainer(tmp_path, "shaping.method=none", *overrides)
    parent = parent_of(trainer)
    inputs = batch_of(trainer)
    output, untouched = generate(trainer, inputs), generate(parent, inputs)
    mask, plain = output["completion_mask"], output["advantages"].clone()
    logps = reference_logps(trainer.model, output, trainer.args.temperature)
    B, T = mask.shape
    log_ppl = [-(logps[i][mask[i].bool()]).sum().item() / mask[i].sum().item() for i in range(B)]
    rank = [sorted(log_ppl[g * G : (g + 1) * G]).index(v) for g in range(B // G)
            for v in log_ppl[g * G : (g + 1) * G]]  # fmt: skip
    expected = torch.zeros(B, T, dtype=torch.float64)
    kept = 0
    for i in range(B):
        n = int(mask[i].sum())
        for t in range(n):
            if keeps(plain[i].item(), t, n, logps[i, t].exp().item(), rank[i] / (G - 1)):
                expected[i, t] = plain[i].item()
                kept += 1
    assert 0 < int((expected != 0).sum()) < int((plain.unsqueeze(1) * mask != 0).sum())  # not vacuous
    the_loss_used(trainer, parent, output, untouched, expected, seed=5)
    share = trainer._metrics["train"]["shaping/update/kept_share"][-1]
    assert share == pytest.approx(kept / int(mask.sum()))


@pytest.mark.parametrize("method", ["none", "ppl", "position", "both"])
def test_trl_evaluation_loop_runs_beside_every_method(tmp_path, method):
    """TRL's own evaluation loop (`eval_strategy: steps`, an eval dataset, as TRL's
    `test_train_with_eval`) between training steps: its batches never came through epx's
    generation seam and pass the loss seam untouched, while training keeps its shaping."""
    from epx.train.trainer import EpxGRPOTrainer

    source = make_trainer(tmp_path / "source", f"shaping.method={method}")
    args = copy.deepcopy(source.args)
    args.eval_strategy, args.eval_steps, args.max_steps = "steps", 1, 2
    args.per_device_eval_batch_size = G
    args.output_dir = str(tmp_path / "run")
    trainer = EpxGRPOTrainer(
        model=source.model,
        reward_funcs=[char_sum_reward],
        args=args,
        train_dataset=source.train_dataset,
        eval_dataset=source.train_dataset.select(range(2)),
        processing_class=source.processing_class,
        callbacks=[type(source.stage_callback()).for_params(source.stage_callback().tracker.params)],
        shaping=source.shaping,
    )
    trainer.train()
    logs = trainer.state.log_history
    assert sum("eval_loss" in entry for entry in logs) == 2  # after each of the two steps
    train_logs = [entry for entry in logs if "reward" in entry]
    assert len(train_logs) == 2 and all("entropy/positive" in entry for entry in train_logs)
    if method in ("ppl", "both"):
        assert all("shaping/ppl/weight_mean" in entry for entry in train_logs)
