"""The reference model of a GRPO run sharded with FSDP2 gets the real starting weights on every rank.

With ``fsdp_cpu_ram_efficient_loading`` (``recipes/accelerate/fsdp.yaml``), transformers loads a checkpoint on the
first rank only and fills every other rank's copy with zeros (``modeling_utils``: the FSDP branch for ranks other
than local rank 0), counting on accelerate to broadcast rank 0's weights when it prepares the model. accelerate does
so for the policy (``fsdp2_prepare_model``). TRL 1.16 builds the reference model itself and shards it with its own
``prepare_fsdp``, whose FSDP2 branch only calls ``fully_shard``: every shard held by a rank other than 0 stays
zero, and the KL term is measured against that. At step 1 the policy equals the reference, so the KL must be 0; on
2 CPU ranks it read 0.063 before this fix (``tests/test_grpo_train.py``). FSDP1 is not affected: its wrapper
broadcasts (``sync_module_states``).

The reference is the starting policy (TRL loads both from the same checkpoint; without a reference, ``beta`` 0 or
PEFT, nothing is done). When the trainer is built, the policy is not sharded yet and rank 0 holds its full weights, so
rank 0 broadcasts those into the sharded reference: no second read of the checkpoint, no extra copy.
"""

from __future__ import annotations

import logging
from typing import Any

from distill.launch import rank0_only_weights

log = logging.getLogger(__name__)


def needs_broadcast(trainer: Any) -> bool:
    """Whether ``trainer``'s reference model was sharded from zero weights on the ranks other than 0."""
    if trainer.ref_model is None or not rank0_only_weights(trainer.accelerator):
        return False
    return trainer.accelerator.state.fsdp_plugin.fsdp_version == 2


def broadcast_reference(trainer: Any) -> bool:
    """Load rank 0's starting policy weights into every rank's shard of the FSDP2 reference model; whether it did."""
    if not needs_broadcast(trainer):
        return False
    from accelerate.utils.fsdp_utils import fsdp2_load_full_state_dict

    full = trainer.accelerator.unwrap_model(trainer.model).state_dict() if trainer.accelerator.is_main_process else {}
    fsdp2_load_full_state_dict(trainer.accelerator, trainer.ref_model, full)
    trainer.ref_model.eval()
    log.info("grpo: the FSDP2 reference model got rank 0's starting weights on all %d ranks",
             trainer.accelerator.num_processes)
    return True
