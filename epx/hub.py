"""The Hugging Face hub, when it cannot be reached: fail in seconds, not after a minute of retries.

`prepare_hub_access()` is called before any hub id is loaded (models, datasets, benchmarks): if
the hub does not answer one connection attempt, this process goes offline, so the libraries use
their local cache only and say at once that the files are not there.
"""

from __future__ import annotations

import os
import socket
import sys
from urllib.parse import urlparse

HUB_HOST = "huggingface.co"


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the hub answers on its port (one attempt; HF_ENDPOINT's host if set)."""
    host = urlparse(os.environ.get("HF_ENDPOINT", f"https://{HUB_HOST}")).hostname or HUB_HOST
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def hub_offline() -> bool:
    """Whether this process uses the local hub cache only."""
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def go_offline() -> None:
    """The local cache only, from now on (the libraries read HF_HUB_OFFLINE once, at import)."""
    from huggingface_hub import constants

    os.environ["HF_HUB_OFFLINE"] = os.environ["HF_DATASETS_OFFLINE"] = "1"
    constants.HF_HUB_OFFLINE = True
    datasets_config = sys.modules.get("datasets.config")
    if datasets_config is not None:
        datasets_config.HF_HUB_OFFLINE = True


def prepare_hub_access() -> bool:
    """Go offline when the hub is unreachable; returns whether the hub will be used."""
    if hub_offline():
        return False
    if hub_reachable():
        return True
    go_offline()
    return False
