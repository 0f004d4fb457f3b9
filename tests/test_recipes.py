"""Every YAML under recipes/ (recursively) validates against the stage configs, offline."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from distill.config import META_SECTIONS, build_config, load_recipe
from distill.stages import COMMANDS

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
STAGE_FILES = sorted(p for p in RECIPES.rglob("*.yaml") if "accelerate" not in p.parts)
ACCELERATE_FILES = sorted((RECIPES / "accelerate").glob("*.yaml"))
SECTIONS = {c.name: c for c in COMMANDS}


def test_walk_finds_nested_recipes():
    assert STAGE_FILES, "no recipes found"
    assert any(len(p.relative_to(RECIPES).parts) > 1 for p in STAGE_FILES), "the walk must be recursive"


@pytest.mark.parametrize("path", STAGE_FILES, ids=lambda p: str(p.relative_to(RECIPES)))
def test_recipe_validates(path):
    data = load_recipe(path)
    sections = [s for s in data if not s.startswith("__") and s not in META_SECTIONS]
    if path.name.startswith("_"):
        # Shared bases (included by other recipes) may hold partial sections; check their keys only.
        for sec in sections:
            assert sec in SECTIONS, f"{path}: unknown section {sec!r}"
            valid = set(SECTIONS[sec].load_config_class().__dataclass_fields__)
            assert set(data[sec]) <= valid, f"{path} [{sec}]: unknown keys {set(data[sec]) - valid}"
        return
    assert sections or "pipeline" in data, f"{path}: no stage section"
    if "pipeline" in data:
        # A pipeline recipe's stage sections are bases that its steps complete: validate every step's config.
        from distill.stages.pipeline.config import PipelineConfig
        from distill.stages.pipeline.stage import plan_steps

        cfg = build_config(PipelineConfig, data["pipeline"] or {}, source=f"{path} [pipeline]")
        steps = plan_steps(cfg, data)
        used = {s.stage for s in steps}
        assert set(sections) <= used, f"{path}: sections no step uses: {set(sections) - used}"
        return
    for sec in sections:
        assert sec in SECTIONS, f"{path}: unknown section {sec!r}; valid: {sorted(SECTIONS)}"
        build_config(SECTIONS[sec].load_config_class(), data[sec] or {}, source=f"{path} [{sec}]")


@pytest.mark.parametrize("path", ACCELERATE_FILES, ids=lambda p: p.name)
def test_accelerate_configs_are_valid_for_accelerate(path):
    from accelerate.commands.config.config_args import ClusterConfig

    data = yaml.safe_load(path.read_text())
    valid = set(ClusterConfig.__dataclass_fields__)
    assert set(data) <= valid, f"{path}: keys accelerate does not know: {set(data) - valid}"
    assert data.get("distributed_type") in {"MULTI_GPU", "DEEPSPEED", "FSDP", "MULTI_CPU", "NO"}


@pytest.mark.parametrize("path", STAGE_FILES, ids=lambda p: str(p.relative_to(RECIPES)))
def test_no_recipe_sets_overwrite(path):
    """--overwrite deletes: a recipe never asks for it (the pipeline clears its own stale step folders itself)."""
    data = load_recipe(path)
    for section, values in data.items():
        if isinstance(values, dict):
            assert values.get("overwrite") is not True, f"{path} [{section}] sets overwrite: true"
    for step in (data.get("pipeline") or {}).get("steps") or []:
        assert (step.get("set") or {}).get("overwrite") is not True, f"{path} step {step.get('name')} sets overwrite"
