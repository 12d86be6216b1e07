"""Test-only launcher: run a script with accelerate's FSDP kept on a CPU.

accelerate 1.15 never shards on a CPU: with an FSDP config and `use_cpu: true` its state becomes
MULTI_CPU and it trains plain DDP (epx refuses such a launch, see `check_launch_mode`). torch's
own FSDP2 (`fully_shard`) does run on CPU with gloo, so this launcher sets accelerate's state to
FSDP with the plugin built from the launch's config, and everything after that is accelerate's,
transformers' and TRL's real FSDP2 code: `fully_shard` on every decoder layer, sharded
(torch.distributed.checkpoint) checkpoints, resume, the full state dict for `final/`.

    accelerate launch --config_file CFG tests/fsdp_cpu.py SCRIPT.py [ARGS ...]
    accelerate launch --config_file CFG tests/fsdp_cpu.py -m epx.cli train ...
"""

from __future__ import annotations

import runpy
import sys


def keep_fsdp_on_cpu() -> None:
    from accelerate.state import AcceleratorState, PartialState
    from accelerate.utils import DistributedType

    original = AcceleratorState.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        plugin = kwargs.get("fsdp_plugin")
        if plugin is not None and self.distributed_type == DistributedType.MULTI_CPU:
            self.distributed_type = DistributedType.FSDP
            self.fsdp_plugin = plugin
            PartialState._shared_state["distributed_type"] = DistributedType.FSDP

    AcceleratorState.__init__ = init


if __name__ == "__main__":
    keep_fsdp_on_cpu()
    if sys.argv[1] == "-m":
        module, sys.argv = sys.argv[2], [sys.argv[2], *sys.argv[3:]]
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    else:
        script, sys.argv = sys.argv[1], sys.argv[1:]
        runpy.run_path(script, run_name="__main__")
