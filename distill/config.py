"""Recipes and stage configs: YAML files give values, flags and ``--set`` override them.

A recipe is a YAML mapping from section names to mappings of options::

    include: ../base.yaml          # optional: a file (or list of files) merged underneath this one
    sft:
      learning_rate: 5.0e-5
      max_length: 32768

Each section belongs to one command and is checked against that command's dataclass (``distill.stages.<command>.config``).
Resolution order, later wins: dataclass defaults < included files < the recipe < ``--set`` < plain flags.
Without a recipe, a config class may name one implied by the other values (``implied_recipe(values)``, e.g. the
student's own recipe for ``distill sft --student qwen-7b``); it is then read as if passed with ``--recipe``.
Every option is documented once, in its dataclass field's ``help`` metadata; the CLI flags and
``--print-config`` are generated from it.

>>> from dataclasses import dataclass
>>> @dataclass
... class Demo:
...     lr: float = option(1e-5, "learning rate")
>>> resolve_config(Demo, "demo", sets=["lr=3e-4"]).lr
0.0003
"""

from __future__ import annotations

import json
import math
import types
import typing
from dataclasses import MISSING, field, fields, is_dataclass
from pathlib import Path
from typing import Any

import yaml

from distill.errors import ConfigError

# Sections every recipe may carry besides the stage sections.
META_SECTIONS = ("include", "description", "pipeline")


def option(default: Any = MISSING, help: str = "", *, choices: typing.Sequence[Any] | None = None,
           flag: bool | str = True, secret: bool = False, default_factory: Any = MISSING) -> Any:
    """A dataclass field with its help text, allowed values and CLI exposure.

    ``flag=False`` keeps an option out of the generated flags (reachable through the recipe and ``--set``);
    a string names the flag explicitly (``flag="--from"``).
    ``secret=True`` marks a value that must never be written to ``run.json`` or logs.
    """
    meta = {"help": help, "choices": tuple(choices) if choices else None, "flag": flag, "secret": secret}
    if default_factory is not MISSING:
        return field(default_factory=default_factory, metadata=meta)
    if isinstance(default, (list, dict, set)):
        value = default
        return field(default_factory=lambda: type(value)(value), metadata=meta)
    return field(default=default, metadata=meta)


# ---------------------------------------------------------------------------------------------- recipes
def load_recipe(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Read a recipe, merging its ``include`` files underneath it (paths relative to the including file)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"recipe not found: {path} (pass an existing YAML file to --recipe)")
    resolved = path.resolve()
    if resolved in _seen:
        chain = " -> ".join(str(p) for p in (*_seen, resolved))
        raise ConfigError(f"recipe include cycle: {chain}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        what = getattr(exc, "problem", None) or " ".join(str(exc).split())
        raise ConfigError(f"{where}: not valid YAML ({what}); fix the recipe there") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); re-save the recipe as "
                          "UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the recipe ({exc.strerror or exc})") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a recipe must be a mapping of sections (got {type(data).__name__})")
    includes = data.pop("include", None) or []
    if isinstance(includes, str):
        includes = [includes]
    merged: dict[str, Any] = {}
    for inc in includes:
        inc_path = (path.parent / inc) if not Path(inc).is_absolute() else Path(inc)
        merged = deep_merge(merged, load_recipe(inc_path, (*_seen, resolved)))
    merged = deep_merge(merged, data)
    merged["__file__"] = str(path)
    return merged


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Merge ``over`` into a copy of ``base``; nested mappings merge, everything else is replaced."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


# ------------------------------------------------------------------------------------------- coercion
def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) < len(typing.get_args(tp)):
            return (args[0] if len(args) == 1 else typing.Union[tuple(args)]), True  # noqa: UP007
    return tp, False


def field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in fields(cls)}


def coerce(value: Any, tp: Any, where: str) -> Any:
    """Turn a YAML value or a ``--set`` string into the field's declared type, or raise ConfigError."""
    tp, optional = _unwrap_optional(tp)
    if value is None or (isinstance(value, str) and value.lower() in ("null", "none", "~")
                         and (tp is not str or optional)):
        if optional or tp is Any:
            return None
        raise ConfigError(f"{where}: null is not allowed here")
    origin = typing.get_origin(tp)
    try:
        if tp is Any:
            return _parse_scalar(value) if isinstance(value, str) else value
        if tp is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "yes", "1", "on"):
                return True
            if isinstance(value, str) and value.lower() in ("false", "no", "0", "off"):
                return False
            if isinstance(value, int) and value in (0, 1):
                return bool(value)
            raise ValueError
        if tp is int:
            if isinstance(value, bool):
                raise ValueError
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(float(value)) if isinstance(value, str) and "e" in value.lower() else int(value)
        if tp is float:
            if isinstance(value, bool):
                raise ValueError
            number = float(value)
            if not math.isfinite(number):
                raise ConfigError(f"{where}: expected a finite number, got {value!r}")
            return number
        if tp is str:
            if isinstance(value, (dict, list)):
                raise ValueError
            return str(value)
        if origin in (list, tuple, typing.Sequence) or tp in (list, tuple):
            (item_tp,) = typing.get_args(tp)[:1] or (Any,)
            if isinstance(value, str):
                value = _parse_scalar(value) if value.strip().startswith("[") else [
                    v.strip() for v in value.split(",") if v.strip()]
            if not isinstance(value, (list, tuple)):
                value = [value]
            return [coerce(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value)]
        if origin is dict or tp is dict:
            if isinstance(value, str):
                value = _parse_scalar(value)
            if not isinstance(value, dict):
                raise ValueError
            return dict(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: expected {_type_name(tp)}, got {value!r}") from None
    return value


def _parse_scalar(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


# ------------------------------------------------------------------------------------------- resolve
def parse_sets(sets: typing.Iterable[str], section: str) -> dict[str, dict[str, Any]]:
    """``["sft.learning_rate=1e-5", "seed=3"]`` -> ``{"sft": {"learning_rate": "1e-5", "seed": "3"}}``.

    A key without a dot belongs to ``section`` (the command being run).
    """
    out: dict[str, dict[str, Any]] = {}
    for item in sets:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. --set {section}.seed=1")
        key, value = item.split("=", 1)
        key = key.strip()
        sec, _, name = key.rpartition(".")
        sec = sec or section
        if not name:
            raise ConfigError(f"--set {item!r}: empty key")
        out.setdefault(sec, {})[name] = value
    return out


def build_config(cls: type, values: dict[str, Any], *, source: str) -> Any:
    """Instantiate ``cls`` from a mapping, rejecting unknown keys with the valid ones listed."""
    types_ = field_types(cls)
    unknown = sorted(set(values) - set(types_))
    if unknown:
        valid = ", ".join(sorted(types_))
        raise ConfigError(f"{source}: unknown key {unknown[0]!r}"
                          + (f" (and {', '.join(map(repr, unknown[1:]))})" if len(unknown) > 1 else "")
                          + f". Valid keys: {valid}")
    kwargs = {}
    for name, value in values.items():
        kwargs[name] = coerce(value, types_[name], f"{source}: {name}")
        choices = _meta(cls, name).get("choices")
        if choices and kwargs[name] is not None and kwargs[name] not in choices:
            raise ConfigError(f"{source}: {name}={kwargs[name]!r} is not one of {', '.join(map(str, choices))}")
    missing = [f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING
               and f.name not in kwargs]
    if missing:
        raise ConfigError(f"{source}: missing required option(s): {', '.join(missing)}")
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as exc:
        if isinstance(exc, ConfigError):
            raise ConfigError(f"{source}: {exc}") from None
        raise ConfigError(f"{source}: {exc}") from None


def _meta(cls: type, name: str) -> dict[str, Any]:
    for f in fields(cls):
        if f.name == name:
            return dict(f.metadata)
    return {}


def resolve_config(cls: type, section: str, *, recipe: str | Path | dict[str, Any] | None = None,
                   sets: typing.Iterable[str] = (), flags: dict[str, Any] | None = None,
                   known_sections: typing.Iterable[str] | None = None) -> Any:
    """Resolve one stage's config from recipe + ``--set`` + flags (later wins)."""
    data: dict[str, Any] = {}
    source = "defaults"
    if recipe is not None:
        data = load_recipe(recipe) if not isinstance(recipe, dict) else dict(recipe)
        source = str(data.get("__file__", recipe if not isinstance(recipe, dict) else "<recipe>"))
        if known_sections is not None:
            check_sections(data, known_sections, source)
    section_values = data.get(section) or {}
    if not isinstance(section_values, dict):
        raise ConfigError(f"{source}: section {section!r} must be a mapping of options")
    values = dict(section_values)
    label = f"{source} [{section}]"
    set_values = parse_sets(sets, section)
    if known_sections is not None:
        for sec in set_values:
            if sec not in known_sections and sec not in META_SECTIONS:
                raise ConfigError(f"--set: unknown section {sec!r}. Valid sections: {', '.join(sorted(known_sections))}")
    for key, value in set_values.get(section, {}).items():
        values[key] = value
        label = f"{source} [{section}] + --set"
    for key, value in (flags or {}).items():
        if value is not None:
            values[key] = value
    implied = getattr(cls, "implied_recipe", None) if recipe is None else None
    implied_path = implied(dict(values)) if callable(implied) else None
    if implied_path is not None:
        return resolve_config(cls, section, recipe=implied_path, sets=sets, flags=flags, known_sections=known_sections)
    return build_config(cls, values, source=label)


def check_sections(data: dict[str, Any], known: typing.Iterable[str], source: str) -> None:
    known = set(known)
    for sec in data:
        if sec.startswith("__"):
            continue
        if sec not in known and sec not in META_SECTIONS:
            raise ConfigError(f"{source}: unknown section {sec!r}. Valid sections: "
                              f"{', '.join(sorted(known | set(META_SECTIONS)))}")


# ------------------------------------------------------------------------------------------ printing
def config_to_dict(cfg: Any, *, redact: bool = True) -> dict[str, Any]:
    """A JSON-friendly dict of a config; ``secret`` fields are redacted."""
    out: dict[str, Any] = {}
    for f in fields(cfg):
        value = getattr(cfg, f.name)
        if redact and f.metadata.get("secret") and value:
            value = "<redacted>"
        elif is_dataclass(value) and not isinstance(value, type):
            value = config_to_dict(value, redact=redact)
        elif isinstance(value, Path):
            value = str(value)
        out[f.name] = value
    return out


def dump_config(section: str, cfg: Any) -> str:
    """YAML text of a resolved config, with each option's help as a comment (``--print-config``)."""
    lines = [f"{section}:"]
    values = config_to_dict(cfg)
    for f in fields(cfg):
        text = yaml.safe_dump({f.name: values[f.name]}, default_flow_style=False, sort_keys=False,
                              width=1000).rstrip("\n")
        body = text.splitlines()
        help_ = f.metadata.get("help", "")
        first = f"  {body[0]}"
        if help_:
            first = f"{first:<44} # {help_}"
        lines.append(first)
        lines.extend(f"  {b}" for b in body[1:])
    return "\n".join(lines) + "\n"


def config_fingerprint(cfg: Any) -> str:
    """A short stable hash of a config's values (used to decide whether a stage must rerun).

    Each value is first put in its declared type, as loading a recipe would, so the same config hashes the same
    however it was built: in Python (a float option given ``0``), or read back from a recipe file (``0.0``), as
    the ranks of a relaunched stage read theirs.
    """
    import contextlib
    import hashlib

    values = config_to_dict(cfg, redact=True)
    types = field_types(type(cfg))
    for name, value in values.items():
        with contextlib.suppress(ConfigError):        # what does not coerce (a redacted secret) is hashed as it is
            values[name] = coerce(value, types[name], name)
    blob = json.dumps(values, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]

