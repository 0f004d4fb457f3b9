"""``distill generate``: long-CoT traces from a teacher (vllm, hf or an OpenAI-compatible endpoint), sharded and resumable.
"""
