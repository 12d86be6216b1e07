"""Library chatter off where epx calls the libraries: epx's own console shows progress instead.

`quiet_libraries()` (called by `epx train` and `epx eval`) turns off transformers' and the hub's
progress bars ("Loading weights", "Writing model shards"), transformers' advisory log lines (and
the line it prints on import in W&B offline mode), and
the FutureWarning/DeprecationWarning that transformers, TRL, accelerate, peft and datasets raise
from their own internals. The filters match the module a warning is attributed to, so a user's
own warnings (and errors from any library) still show.
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings

LIBRARY_MODULES = r"(transformers|trl|accelerate|peft|datasets|huggingface_hub|torch)(\..*)?$"


def quiet_libraries() -> None:
    """Silence the libraries' progress bars, advisory logs and internal deprecation warnings."""
    for category in (FutureWarning, DeprecationWarning):
        warnings.filterwarnings("ignore", category=category, module=LIBRARY_MODULES)
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from huggingface_hub.utils import disable_progress_bars
    from transformers.utils import logging as transformers_logging

    with contextlib.redirect_stdout(io.StringIO()):  # it prints "[INFO] Running in WANDB
        import transformers.integrations.integration_utils  # noqa: F401 (offline mode" once)
    disable_progress_bars()
    transformers_logging.disable_progress_bar()
    transformers_logging.set_verbosity_error()
    try:
        import datasets

        datasets.disable_progress_bars()
        datasets.logging.set_verbosity_error()
    except (ImportError, AttributeError):  # pragma: no cover - datasets is a dependency
        pass
