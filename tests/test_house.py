"""The house rules, read from the import graph: one package per command, stages never import each other, and the
shared layers (verify, metrics, data, engines) import no stage and no heavy trainer/engine library at module level.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

from distill.stages import COMMANDS

ROOT = Path(__file__).resolve().parents[1] / "distill"
SHARED = ["verify", "metrics.py", "data", "engines"]
HEAVY = ("trl", "vllm", "deepspeed", "lm_eval")


def imports_of(path: Path, *, module_level_only: bool = False, text: str | None = None) -> list[str]:
    """The absolute module names a file imports (relative imports resolved against its package)."""
    tree = ast.parse(path.read_text(encoding="utf-8") if text is None else text)
    nodes = tree.body if module_level_only else list(ast.walk(tree))
    out = []
    for node in nodes:
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = path.relative_to(ROOT.parent).with_suffix("").parts[: -node.level]
                base = ".".join((*package, base)) if base else ".".join(package)
            out.append(base)
            out += [f"{base}.{a.name}" for a in node.names]
    return out


def py_files(place: str) -> list[Path]:
    path = ROOT / place
    return [path] if path.is_file() else sorted(path.rglob("*.py"))


PACKAGES = {c.package for c in COMMANDS}


def stage_of(module: str) -> str | None:
    """The stage package a module belongs to (``None`` for the registry itself and everything outside stages)."""
    parts = module.split(".")
    return parts[2] if len(parts) > 2 and parts[:2] == ["distill", "stages"] and parts[2] in PACKAGES else None


@pytest.mark.parametrize("cmd", COMMANDS, ids=lambda c: c.name)
def test_every_command_has_its_package_with_config_and_runner(cmd):
    assert (ROOT / "stages" / cmd.package / "__init__.py").is_file()
    cls = cmd.load_config_class()
    assert cls.__module__ == cmd.module("config")
    assert callable(importlib.import_module(cmd.module("stage")).run)


def test_no_stage_imports_another():
    crossings = []
    for cmd in COMMANDS:
        for path in py_files(f"stages/{cmd.package}"):
            for module in imports_of(path):
                other = stage_of(module)
                if other is not None and other != cmd.package:
                    crossings.append(f"{path.relative_to(ROOT)} imports {module}")
    assert not crossings, "\n".join(crossings)


def test_shared_layers_import_no_stage_and_nothing_heavy_at_module_level():
    found = []
    for place in SHARED:
        for path in py_files(place):
            for module in imports_of(path):
                if module.startswith("distill.stages") or module == "distill.cli":
                    found.append(f"{path.relative_to(ROOT)} imports {module}")
            for module in imports_of(path, module_level_only=True):
                if module.split(".")[0] in HEAVY:
                    found.append(f"{path.relative_to(ROOT)} imports {module} at module level")
    assert not found, "\n".join(found)


def test_only_main_imports_the_cli():
    users = [str(p.relative_to(ROOT)) for p in ROOT.rglob("*.py")
             if any(m == "distill.cli" or m.startswith("distill.cli.") for m in imports_of(p))]
    assert users == ["__main__.py"]


def test_no_module_over_400_lines_and_no_function_over_80():
    too_long = []
    for path in ROOT.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        if len(text.splitlines()) > 400:
            too_long.append(f"{path.relative_to(ROOT)}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > 80:
                    too_long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}() is {length} lines")
    assert not too_long, "\n".join(too_long)


def test_the_import_reader_sees_a_crossing():
    """The checks above are only as good as the reader: it must resolve relative imports into stage names."""
    here = ROOT / "stages" / "sft" / "stage.py"
    assert [stage_of(m) for m in imports_of(here, text="from ..grpo import data\n")] == ["grpo", "grpo"]
    assert stage_of(imports_of(here, text="from distill.stages.filter.trace import prepare\n")[0]) == "filter"
    assert stage_of(imports_of(here, text="from distill.stages import get_command\n")[1]) is None
