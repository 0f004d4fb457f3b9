from distill.cli import entrypoint

entrypoint()
