"""The ``distill`` command line: one thin subcommand per stage.

Each subcommand reads ``--recipe FILE`` (its own section of it), applies ``--set section.key=value`` and its
plain flags, then calls one function of a stage. Flags are generated from the stage's config dataclass, so
the same option is spelled the same way in every command and documented in one place.
Heavy libraries are imported only inside the stage that runs, so ``distill --help`` stays fast.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import typing
from dataclasses import MISSING, fields
from typing import Any

from distill import __version__
from distill.config import (
    _unwrap_optional,
    dump_config,
    field_types,
    load_recipe,
    parse_sets,
    resolve_config,
)
from distill.errors import USER_ERRORS
from distill.stages import COMMANDS, Command, get_command, section_names


def _add_config_flags(parser: argparse.ArgumentParser, cls: type) -> None:
    types_ = field_types(cls)
    group = parser.add_argument_group("options (each also settable in the recipe or with --set)")
    for f in fields(cls):
        meta = f.metadata
        if not meta.get("flag", True):
            continue
        tp, _ = _unwrap_optional(types_[f.name])
        flag = meta["flag"] if isinstance(meta.get("flag"), str) else "--" + f.name.replace("_", "-")
        default = f.default if f.default is not MISSING else (
            f.default_factory() if f.default_factory is not MISSING else None)
        help_ = meta.get("help", "")
        if meta.get("choices"):
            help_ += f" [{'|'.join(map(str, meta['choices']))}]"
        if default not in (None, "", [], {}):
            help_ += f" (default: {default})"
        help_ = help_.replace("%", "%%")
        kwargs: dict[str, Any] = {"dest": f"cfg__{f.name}", "default": None, "help": help_}
        if tp is bool:
            group.add_argument(flag, action=argparse.BooleanOptionalAction, **kwargs)
        elif typing.get_origin(tp) in (list, tuple) or tp in (list, tuple):
            group.add_argument(flag, nargs="+", metavar=f.name.upper(), **kwargs)
        elif typing.get_origin(tp) is dict or tp is dict:
            continue
        else:
            group.add_argument(flag, metavar=f.name.upper(), **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="distill",
        description="Reproduce DeepSeek-R1 reasoning distillation: GRPO teacher -> traces -> filter -> "
                    "SFT students -> eval.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  " + "\n  ".join(c.examples.splitlines()[0] for c in COMMANDS)
               + "\n\nRun 'distill COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"distill {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for cmd in COMMANDS:
        p = sub.add_parser(cmd.name, help=cmd.help, description=cmd.help,
                           formatter_class=argparse.RawDescriptionHelpFormatter,
                           epilog="examples:\n  " + cmd.examples)
        common = p.add_argument_group("common")
        common.add_argument("--recipe", metavar="FILE", help=f"YAML recipe; its '{cmd.name}:' section is read")
        common.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                            help=f"override any option, e.g. --set {cmd.name}.seed=1 (repeatable)")
        common.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
        common.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
        common.add_argument("-q", "--quiet", action="count", default=0, help="less log output")
        _add_config_flags(p, cmd.load_config_class())
    return parser


def setup_logging(verbose: int, quiet: int) -> None:
    level = logging.INFO - 10 * verbose + 10 * quiet
    logging.basicConfig(level=max(logging.DEBUG, min(level, logging.ERROR)),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    if verbose == 0:
        for noisy in ("httpx", "urllib3", "filelock", "datasets", "transformers"):
            logging.getLogger(noisy).setLevel(max(logging.WARNING, level))


def resolve_command_config(cmd: Command, args: argparse.Namespace) -> Any:
    flags = {k[len("cfg__"):]: v for k, v in vars(args).items() if k.startswith("cfg__")}
    return resolve_config(cmd.load_config_class(), cmd.name, recipe=args.recipe, sets=args.sets, flags=flags,
                          known_sections=section_names())


def full_recipe(args: argparse.Namespace) -> dict[str, Any]:
    """The whole recipe with every section's ``--set`` overrides merged in (for commands that drive others)."""
    data = load_recipe(args.recipe) if args.recipe else {}
    sets = parse_sets(args.sets, args.command)
    for section, values in sets.items():
        data[section] = {**(data.get(section) or {}), **values}
    data["__sets__"] = sets     # the pipeline applies them again on top of each step's own 'set'
    return data


def one_line(exc: BaseException) -> str:
    """A user error as one line: whatever a library put in the message, its lines are joined.

    >>> one_line(ValueError("could not load x:" + chr(10) + "  Repo id must be ..."))
    'could not load x: Repo id must be ...'
    """
    return " ".join(str(exc).split())


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 0
    cmd = get_command(args.command)
    setup_logging(args.verbose, args.quiet)
    try:
        cfg = resolve_command_config(cmd, args)
        if args.print_config:
            sys.stdout.write(dump_config(cmd.name, cfg))
            return 0
        cmd.run(cfg, recipe=full_recipe(args) if cmd.needs_recipe else None)
    except USER_ERRORS as exc:
        print(f"distill {cmd.name}: error: {one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\ndistill {cmd.name}: interrupted. Finished work is on disk; rerun the same command to resume.",
              file=sys.stderr)
        return 130
    return 0


def entrypoint() -> None:  # console script
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())


if __name__ == "__main__":
    entrypoint()


__all__ = ["build_parser", "entrypoint", "main"]
