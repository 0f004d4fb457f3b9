"""``distill tiny``: a tiny Qwen2/Llama checkpoint made offline (tests, nano recipes). ``build`` makes it.
"""
