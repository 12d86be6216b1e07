"""What defines a study, so that a rerun never mixes other trials into it. Pure.

A study is its recipe (every resolved value that changes what a trial trains: all but
`output_dir`, `logging.*` and the searched keys, which each trial sets), its shaping method, its
search space (each parameter's bounds, choices and paper value), its metric, direction and
sampler. `study_identity` is stored with the study when it is created; a worker that would add
trials to it compares its own first, and `identity_differences` names what differs. With
`--new-study` such a worker starts the study `variant_name(name, identity)` instead: the same
settings always lead to the same new name, so several workers started alike share it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

from epx.recipe import flatten

IDENTITY_ATTR = "identity"  # the study's user attribute that holds it
NOT_TRAINING = ("output_dir", "logging.")  # where a trial writes and how it is logged
SHOWN = 3  # differences named in full; the rest are counted


def _json(value: Any) -> Any:
    """As it comes back from the storage (tuples become lists, keys strings)."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def _digest(value: Any, size: int = 16) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:size]


def recipe_values(recipe_data: dict[str, Any], searched: set[str]) -> dict[str, Any]:
    """The resolved recipe's values (dotted keys) that change what a trial trains."""
    return {
        key: value
        for key, value in flatten(recipe_data).items()
        if not key.startswith(NOT_TRAINING) and key not in NOT_TRAINING and key not in searched
    }


def study_identity(
    recipe_data: dict[str, Any],
    space: Any,
    *,
    method: str,
    metric: str,
    direction: str,
    sampler: str,
) -> dict[str, Any]:
    """The identity of a study: `recipe_data` is the resolved recipe as a mapping (its YAML),
    `space` a `SearchSpace`."""
    params = {
        param.key: {k: v for k, v in dataclasses.asdict(param).items() if k != "key"}
        for param in space.params
    }
    values = recipe_values(recipe_data, set(params))
    return _json({
        "recipe_hash": _digest(values),
        "recipe": values,
        "method": method,
        "space": params,
        "metric": metric,
        "direction": direction,
        "sampler": sampler,
    })  # fmt: skip


def _where(key: str) -> str:
    section, _, rest = key.partition(".")
    label = {"recipe": "recipe", "space": "search space"}.get(section)
    return f"{label} {rest}" if label and rest else key


def identity_differences(stored: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """`key: value there, value now` for each value that differs (only the keys `stored` has,
    for a study made before identities were kept: method, metric, direction)."""
    old = flatten({k: v for k, v in stored.items() if k != "recipe_hash"})
    new = flatten({k: v for k, v in _json(now).items() if k != "recipe_hash"})
    if "recipe_hash" not in stored:  # an older study: only what it recorded
        new = {key: value for key, value in new.items() if key in old}
    keys = sorted(set(old) | set(new))
    return [
        f"{_where(key)}: {old.get(key, '(none)')!r} there, {new.get(key, '(none)')!r} now"
        for key in keys
        if old.get(key) != new.get(key)
    ]


def describe_differences(differences: list[str]) -> str:
    shown = "; ".join(differences[:SHOWN])
    more = len(differences) - SHOWN
    return shown + (f"; and {more} more" if more > 0 else "")


def refusal(study_name: str, differences: list[str]) -> str:
    """The one line that refuses to add trials of other settings to a study."""
    return (
        f"study {study_name!r} was made with other settings ({describe_differences(differences)})"
        ": pass --new-study to start a study of its own for these, or another --study-name"
    )


def variant_name(name: str, identity: dict[str, Any]) -> str:
    """The name of the study `--new-study` starts beside `name` for these settings."""
    return f"{name}-{_digest(identity, 8)}"
