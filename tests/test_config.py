"""The recipe/override machinery: precedence, type coercion, unknown keys, includes."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from distill.config import (
    ConfigError,
    config_fingerprint,
    dump_config,
    load_recipe,
    option,
    parse_sets,
    resolve_config,
)


@dataclass
class Demo:
    lr: float = option(1e-5, "learning rate")
    steps: int = option(10, "steps")
    name: str = option("a", "a name", choices=["a", "b"])
    flag: bool = option(False, "a switch")
    tags: list[str] = option([], "tags")
    extra: dict = option({}, "free-form mapping")
    maybe: int | None = option(None, "optional")
    token: str = option("", "a secret", secret=True)

    def __post_init__(self) -> None:
        if self.steps < 0:
            raise ValueError("steps must be >= 0")


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_precedence_defaults_recipe_set_flags(tmp_path):
    recipe = write(tmp_path, "r.yaml", "demo:\n  lr: 3.0e-4\n  steps: 5\n  name: b\n")
    cfg = resolve_config(Demo, "demo", recipe=recipe)
    assert (cfg.lr, cfg.steps, cfg.name) == (3e-4, 5, "b")
    cfg = resolve_config(Demo, "demo", recipe=recipe, sets=["steps=7", "demo.flag=true"])
    assert (cfg.steps, cfg.flag) == (7, True)
    cfg = resolve_config(Demo, "demo", recipe=recipe, sets=["steps=7"], flags={"steps": "9", "lr": None})
    assert cfg.steps == 9 and cfg.lr == 3e-4


def test_unknown_key_names_key_file_and_valid_keys(tmp_path):
    recipe = write(tmp_path, "bad.yaml", "demo:\n  learning_rate: 1\n")
    with pytest.raises(ConfigError) as err:
        resolve_config(Demo, "demo", recipe=recipe)
    msg = str(err.value)
    assert "learning_rate" in msg and "bad.yaml" in msg and "Valid keys" in msg and "lr" in msg


def test_unknown_section_is_an_error(tmp_path):
    recipe = write(tmp_path, "r.yaml", "demoo:\n  lr: 1\n")
    with pytest.raises(ConfigError, match="unknown section 'demoo'"):
        resolve_config(Demo, "demo", recipe=recipe, known_sections=["demo"])


@pytest.mark.parametrize("sets,expected", [
    (["lr=2e-5"], ("lr", 2e-5)),
    (["steps=1e3"], ("steps", 1000)),
    (["flag=yes"], ("flag", True)),
    (["tags=x,y"], ("tags", ["x", "y"])),
    (["tags=[x, y, z]"], ("tags", ["x", "y", "z"])),
    (["extra={a: 1}"], ("extra", {"a": 1})),
    (["maybe=null"], ("maybe", None)),
    (["maybe=4"], ("maybe", 4)),
])
def test_set_coerces_types(sets, expected):
    cfg = resolve_config(Demo, "demo", sets=sets)
    assert getattr(cfg, expected[0]) == expected[1]


@pytest.mark.parametrize("sets,fragment", [
    (["steps=abc"], "expected int"),
    (["steps=1.5"], "expected int"),
    (["flag=maybe"], "expected bool"),
    (["name=c"], "not one of a, b"),
    (["steps=-1"], "steps must be >= 0"),
    (["noequals"], "expected KEY=VALUE"),
])
def test_bad_values_are_config_errors(sets, fragment):
    with pytest.raises(ConfigError, match=fragment):
        resolve_config(Demo, "demo", sets=sets)


def test_include_merges_underneath_and_detects_cycles(tmp_path):
    write(tmp_path, "base.yaml", "demo:\n  lr: 1.0e-3\n  steps: 3\n")
    top = write(tmp_path, "top.yaml", "include: base.yaml\ndemo:\n  steps: 4\n")
    cfg = resolve_config(Demo, "demo", recipe=top)
    assert (cfg.lr, cfg.steps) == (1e-3, 4)
    write(tmp_path, "a.yaml", "include: b.yaml\n")
    write(tmp_path, "b.yaml", "include: a.yaml\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_recipe(tmp_path / "a.yaml")


def test_missing_and_malformed_recipe(tmp_path):
    with pytest.raises(ConfigError, match="recipe not found"):
        load_recipe(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_recipe(write(tmp_path, "x.yaml", "demo: [1, 2\n"))
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_recipe(write(tmp_path, "y.yaml", "- 1\n- 2\n"))


def test_dump_redacts_secrets_and_shows_help():
    cfg = Demo(token="sk-very-secret")
    text = dump_config("demo", cfg)
    assert "sk-very-secret" not in text and "<redacted>" in text
    assert "# learning rate" in text


def test_fingerprint_tracks_values():
    assert config_fingerprint(Demo()) == config_fingerprint(Demo())
    assert config_fingerprint(Demo()) != config_fingerprint(Demo(steps=11))


def test_parse_sets_defaults_to_section():
    assert parse_sets(["a=1", "x.b=2"], "demo") == {"demo": {"a": "1"}, "x": {"b": "2"}}


def test_fingerprint_is_the_same_for_a_config_built_in_python_and_one_read_back_from_its_recipe(tmp_path):
    """A relaunched stage's ranks read the config from a recipe file, where a float option given as 0 comes back
    as 0.0: the run they record must still count as the run that was asked for."""
    import yaml

    from distill.config import config_fingerprint, config_to_dict, resolve_config
    from distill.stages.grpo.config import GRPOStageConfig

    cfg = GRPOStageConfig(model="m", dataset="d.jsonl", warmup_steps=0)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({"grpo": config_to_dict(cfg, redact=False)}))
    back = resolve_config(GRPOStageConfig, "grpo", recipe=recipe)
    assert isinstance(back.warmup_steps, float) and isinstance(cfg.warmup_steps, int)
    assert config_fingerprint(back) == config_fingerprint(cfg)
    assert config_fingerprint(GRPOStageConfig(model="m", dataset="d.jsonl", warmup_steps=5)) != config_fingerprint(cfg)


def test_a_non_finite_number_in_a_recipe_is_refused(tmp_path):
    from distill.config import resolve_config
    from distill.errors import ConfigError
    from distill.stages.generate.config import GenerateConfig

    recipe = tmp_path / "r.yaml"
    recipe.write_text("generate:\n  temperature: .nan\n")
    with pytest.raises(ConfigError, match="temperature: expected a finite number"):
        resolve_config(GenerateConfig, "generate", recipe=recipe)
