"""Saved weights on disk: rewriting a finished model folder's float32 shards as bfloat16.

Students and teachers train with float32 master weights (under bf16 autocast on GPUs); serving and evaluating
them needs only bfloat16, at half the disk and load time. The rewrite goes one shard at a time, each written to a
temporary file and moved into place, so a crash leaves every shard whole (old or new).
"""

from __future__ import annotations

import json
import os
from pathlib import Path


def to_bf16(folder: Path) -> int:
    """Rewrite the float32 safetensors shards in ``folder`` as bfloat16 (other dtypes kept) and set the dtype in
    its ``config.json``; returns how many shards changed (0: nothing was float32)."""
    import torch
    from safetensors.torch import load_file, save_file

    changed = 0
    for shard in sorted(Path(folder).glob("*.safetensors")):
        tensors = load_file(str(shard))
        if not any(t.dtype == torch.float32 for t in tensors.values()):
            continue
        tensors = {k: (v.to(torch.bfloat16) if v.dtype == torch.float32 else v) for k, v in tensors.items()}
        tmp = shard.with_suffix(".tmp")
        save_file(tensors, str(tmp), metadata={"format": "pt"})
        os.replace(tmp, shard)
        changed += 1
    config = Path(folder) / "config.json"
    if changed and config.is_file():
        data = json.loads(config.read_text())
        for key in ("dtype", "torch_dtype"):
            if key in data:
                data[key] = "bfloat16"
        config.write_text(json.dumps(data, indent=2) + "\n")
    return changed
