"""Memory and throughput plans of a training run (`distill sft --plan`, `distill pipeline --plan`), from the
registry's shape alone (no weights are loaded).

Memory per GPU is an estimate for bf16 mixed-precision AdamW, good to about ±25%; it leaves out the CUDA
context, allocator fragmentation and communication buckets (budget ~10% of the card for them):

- weights, gradients and optimizer states, in bytes per parameter (P parameters, N GPUs):

  =========  ====================================  =================================================
  strategy   full fine-tuning                      LoRA (base frozen in bf16; T trainable params)
  =========  ====================================  =================================================
  ddp        fp32 weights 4P + grads 4P + Adam 8P,  base 2P + adapters 16T, all replicated
             + bf16 casts of the weights 2P
  zero2      bf16 weights 2P + (grads 2P + fp32     base 2P + 16T / N
             master 4P + Adam 8P) / N
  zero3      (2P + 2P + 12P) / N + two gathered     base 2P / N + 16T / N + gathered layers
             layers in bf16
  fsdp       (4P + 4P + 8P) / N + two gathered      same as zero3
             layers in bf16
  =========  ====================================  =================================================

  QLoRA stores the decoder's linear layers in 4 bits (about 0.56 bytes per parameter with the quantization
  constants); embeddings and the LM head stay in bf16.
- activations, per token (bf16): a decoder layer keeps about ``6h + 3kv + 4i`` values for its backward pass
  (norm inputs and outputs, q/k/v after RoPE, attention output, the MLP's gate, up, activation and product);
  flash/SDPA attention stores no seq x seq scores. With gradient checkpointing only each layer's input (``h``
  values) is kept, plus one layer's full set while it is recomputed and its gradients. TRL's fused LM head
  computes the loss in tiles, so the ``seq x vocab`` logits never exist whole.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from distill.students import Student

GIB = 1 << 30
QLORA_BYTES = 0.5 + 0.5 / 8   # NF4 weights + double-quantized absmax constants (about 0.06 bytes per parameter)


@dataclass
class Memory:
    weights: float
    gradients: float
    optimizer: float
    gathered: float
    activations: float
    activations_no_checkpointing: float
    notes: list[str] = field(default_factory=list)

    @property
    def total(self) -> float:
        return self.weights + self.gradients + self.optimizer + self.gathered + self.activations


def layer_parameters(s: Student) -> tuple[int, int]:
    """(parameters in one decoder layer's linear layers, parameters outside the decoder's linear layers)."""
    kv = s.kv_heads * s.head_dim
    linear = s.hidden * s.hidden * 2 + s.hidden * kv * 2 + 3 * s.hidden * s.intermediate
    return linear, s.num_parameters() - s.layers * linear


def lora_parameters(s: Student, r: int, targets: list[str]) -> int:
    """Trainable LoRA parameters: r x (in + out) for each targeted linear layer in every decoder layer."""
    h, kv, i = s.hidden, s.kv_heads * s.head_dim, s.intermediate
    shapes = {"q_proj": (h, h), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (h, h),
              "gate_proj": (h, i), "up_proj": (h, i), "down_proj": (i, h)}
    return s.layers * sum(r * (a + b) for name, (a, b) in shapes.items() if name in targets)


def activation_bytes(s: Student, tokens: int, *, checkpointing: bool, offloading: bool = False) -> float:
    kv = s.kv_heads * s.head_dim
    per_layer = (6 * s.hidden + 3 * kv + 4 * s.intermediate) * 2 * tokens
    head = tokens * s.hidden * 4 * 2            # final norm output and its gradient, fp32
    if not checkpointing:
        return s.layers * per_layer + head
    inputs = 0 if offloading else s.layers * s.hidden * 2 * tokens
    return inputs + 2 * per_layer + head        # one layer recomputed + its gradients


def estimate_memory(s: Student, *, strategy: str, num_gpus: int, seq_len: int, micro_batch: int,
                    checkpointing: bool, lora: bool = False, qlora: bool = False, lora_r: int = 64,
                    lora_targets: list[str] | None = None, offloading: bool = False) -> Memory:
    p = s.num_parameters()
    n = max(1, num_gpus)
    linear, other = layer_parameters(s)
    one_layer_bf16 = (linear + 2 * s.hidden) * 2
    notes: list[str] = []
    sharded = strategy in ("zero3", "fsdp")
    gathered = 2 * one_layer_bf16 if sharded else 0.0
    if lora:
        t = lora_parameters(s, lora_r, lora_targets or [])
        base = (s.layers * linear * QLORA_BYTES + other * 2) if qlora else 2 * p
        weights = base / n if sharded else base
        weights += 4 * t / (n if strategy != "ddp" else 1)
        grads = 4 * t / (n if strategy != "ddp" else 1)
        optim = 8 * t / (n if strategy != "ddp" else 1)
        notes.append(f"LoRA r={lora_r}: {t / 1e6:.1f} M trainable parameters" + (" on a 4-bit base" if qlora else ""))
    elif strategy == "ddp":
        weights, grads, optim = 4 * p + 2 * p, 4 * p, 8 * p
        notes.append("ddp keeps fp32 weights, grads and Adam states on every GPU, plus bf16 casts of the weights")
    elif strategy == "zero2":
        weights, grads, optim = 2 * p, 2 * p / n, 12 * p / n
    elif strategy == "zero3":
        weights, grads, optim = 2 * p / n, 2 * p / n, 12 * p / n
    elif strategy == "fsdp":
        weights, grads, optim = 4 * p / n, 4 * p / n, 8 * p / n
    else:
        raise ValueError(f"unknown strategy {strategy!r}")
    tokens = seq_len * micro_batch
    act = activation_bytes(s, tokens, checkpointing=checkpointing, offloading=offloading)
    act_off = activation_bytes(s, tokens, checkpointing=False)
    if offloading:
        notes.append("activation offloading: checkpointed layer inputs live in CPU memory")
    return Memory(weights, grads, optim, gathered, act, act_off, notes)


def pack_rows(lengths: list[int], max_length: int) -> int:
    """Rows that best-fit-decreasing packing (TRL's 'bfd') makes of these lengths (longer ones count alone)."""
    remaining: list[int] = []                       # sorted free space of the open rows
    rows = 0
    for n in sorted(lengths, reverse=True):
        n = min(n, max_length)
        k = bisect.bisect_left(remaining, n)
        if k < len(remaining):
            space = remaining.pop(k) - n
        else:
            rows += 1
            space = max_length - n
        if space > 0:
            bisect.insort(remaining, space)
    return rows


@dataclass
class Plan:
    student: str
    model: str
    strategy: str
    num_gpus: int
    seq_len: int
    parameters: int
    trainable: int
    memory_gib: dict[str, float]
    gpu_memory_gib: float
    fits: bool
    tokens_per_step: int
    examples: int | None = None
    dataset_tokens: int | None = None
    rows_per_epoch: int | None = None
    steps_per_epoch: int | None = None
    total_steps: int | None = None
    fill: float | None = None
    length_source: str | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def make_plan(s: Student, *, model: str, strategy: str, num_gpus: int, seq_len: int, micro_batch: int,
              grad_accum: int, checkpointing: bool, lora: bool, qlora: bool, lora_r: int, lora_targets: list[str],
              offloading: bool, packing: bool, gpu_memory_gib: float, epochs: float, max_steps: int,
              lengths: list[int] | None = None, total_examples: int | None = None,
              length_source: str | None = None) -> Plan:
    """Everything ``--plan`` prints. ``lengths`` may be a sample of ``total_examples`` rows."""
    mem = estimate_memory(s, strategy=strategy, num_gpus=num_gpus, seq_len=seq_len, micro_batch=micro_batch,
                          checkpointing=checkpointing, lora=lora, qlora=qlora, lora_r=lora_r,
                          lora_targets=lora_targets, offloading=offloading)
    trainable = lora_parameters(s, lora_r, lora_targets) if lora else s.num_parameters()
    memory = {k: getattr(mem, k) / GIB for k in ("weights", "gradients", "optimizer", "gathered", "activations",
                                                    "activations_no_checkpointing")}
    memory["total"] = mem.total / GIB
    plan = Plan(student=s.name, model=model, strategy=strategy, num_gpus=num_gpus, seq_len=seq_len,
                parameters=s.num_parameters(), trainable=trainable, memory_gib=memory, gpu_memory_gib=gpu_memory_gib,
                fits=mem.total <= 0.9 * gpu_memory_gib * GIB,
                tokens_per_step=micro_batch * seq_len * grad_accum * num_gpus, notes=list(mem.notes))
    if lengths:
        n_total = total_examples or len(lengths)
        scale = n_total / len(lengths)
        kept = [n for n in lengths if n <= seq_len]
        over = len(lengths) - len(kept)
        if over:
            plan.notes.append(f"about {round(over * scale)} examples exceed max_length {seq_len} "
                              "(dropped by default: overlong: drop)")
        rows = math.ceil(pack_rows(kept, seq_len) * scale) if packing else round(len(kept) * scale)
        plan.examples = round(len(kept) * scale)
        plan.dataset_tokens = round(sum(kept) * scale)
        plan.rows_per_epoch = rows
        plan.fill = plan.dataset_tokens / max(1, rows * seq_len) if packing else None
        batches = math.ceil(rows / (micro_batch * num_gpus))
        plan.steps_per_epoch = max(1, math.ceil(batches / grad_accum))
        plan.total_steps = max_steps if max_steps > 0 else math.ceil(plan.steps_per_epoch * epochs)
        plan.length_source = length_source
    if not plan.fits:
        plan.notes.append(_advice(mem, strategy, gpu_memory_gib, checkpointing))
    return plan


def _advice(mem: Memory, strategy: str, gpu_gib: float, checkpointing: bool) -> str:
    if not checkpointing and mem.activations > 0.5 * gpu_gib * GIB:
        return "does not fit: turn gradient_checkpointing on"
    if strategy in ("ddp", "zero2") and mem.weights + mem.gradients + mem.optimizer > 0.5 * gpu_gib * GIB:
        return "does not fit: shard the model states (strategy zero3 or fsdp), or use more GPUs with zero2"
    if mem.activations > 0.4 * gpu_gib * GIB:
        return ("does not fit: activations dominate; lower max_length or per_device_train_batch_size, or turn on "
                "activation_offloading")
    return "does not fit: use more GPUs, LoRA, or a smaller max_length"


def _count(n: int) -> str:
    return f"{n / 1e9:.2f} B" if n >= 1e9 else f"{n / 1e6:.1f} M"


def _gib(x: float) -> str:
    return f"{x:.1f} GiB" if x >= 0.1 else f"{x * 1024:.1f} MiB"


def format_plan(plan: Plan) -> str:
    m = plan.memory_gib
    mode = "full fine-tuning" if plan.trainable == plan.parameters else "LoRA"
    lines = [
        f"plan: {plan.student} ({plan.model}), {mode}, strategy {plan.strategy} on {plan.num_gpus} GPU(s), "
        f"max_length {plan.seq_len:,}",
        f"  parameters          {_count(plan.parameters)} (trainable {_count(plan.trainable)})",
        f"  memory per GPU      ~{_gib(m['total'])} of {plan.gpu_memory_gib:g} GiB -> "
        + ("fits" if plan.fits else "DOES NOT FIT"),
        f"    weights           {_gib(m['weights'])}",
        f"    gradients         {_gib(m['gradients'])}",
        f"    optimizer         {_gib(m['optimizer'])}",
    ]
    if m["gathered"]:
        lines.append(f"    gathered layers   {_gib(m['gathered'])}")
    lines.append(f"    activations       {_gib(m['activations'])} "
                 f"(without gradient checkpointing: {_gib(m['activations_no_checkpointing'])})")
    lines.append(f"  tokens per step     {plan.tokens_per_step:,} (upper bound: rows x max_length x accumulation "
                 "x GPUs)")
    if plan.steps_per_epoch is not None:
        fill = f", rows {plan.fill:.0%} full" if plan.fill is not None else ""
        lines.append(f"  dataset             {plan.examples:,} examples, {plan.dataset_tokens:,} tokens, "
                     f"{plan.rows_per_epoch:,} rows per epoch{fill} ({plan.length_source})")
        lines.append(f"  steps per epoch     {plan.steps_per_epoch:,} (total {plan.total_steps:,})")
    else:
        lines.append("  steps per epoch     pass --dataset to count them")
    lines.extend(f"  note: {n}" for n in plan.notes)
    return "\n".join(lines)
