"""``contrastkit zoo list | get | verify | path``."""

from __future__ import annotations

import argparse
import sys

from contrastkit.zoo.cache import home, read_cached
from contrastkit.zoo.fetch import OutsideBand, get, verify, weights_path
from contrastkit.zoo.metafiles import entries, find

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    zoo = sub.add_parser("zoo", help="trained encoders with expected results: list, get, verify, path")
    actions = zoo.add_subparsers(dest="zoo_command", required=True, parser_class=type(zoo))
    actions.add_parser("list", help="every entry, its band, and what is cached")
    for name, text in (
        ("get", "cached weights; else download; else train and check the band"),
        ("verify", "retrain and check the band (however the cache stands)"),
    ):
        action = actions.add_parser(name, help=text)
        action.add_argument("names", nargs="*" if name == "verify" else 1, metavar="NAME")
        if name == "verify":
            action.add_argument("--all", action="store_true", help="every entry")
        action.add_argument("--data-root", help="folder with datasets (else $CONTRASTKIT_DATA)")
        action.add_argument("--no-progress", action="store_true")
    path = actions.add_parser("path", help="where an entry's cached weights are")
    path.add_argument("names", nargs=1, metavar="NAME")


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _list() -> None:
    print(f"zoo cache: {home() / 'zoo'}")
    print(f"{'entry':26s} {'recipe':16s} {'seed':>4s}  {'band (metric)':28s} {'params':>8s} {'train':>7s}  cached")
    for entry in entries().values():
        cached = read_cached(entry.name)
        state = "-" if cached is None else ("verified" if cached.verified else "UNVERIFIED")
        if cached is not None and cached.value is not None:
            state += f" ({cached.value:.2f})"
        band = f"{entry.band[0]:.1f}-{entry.band[1]:.1f} ({entry.metric})"
        minutes = f"{entry.train_minutes:.1f}m" if entry.train_minutes else "?"
        size = f"{entry.params or 0:8d} {minutes:>7s}"
        print(f"{entry.name:26s} {entry.recipe:16s} {entry.seed:4d}  {band:28s} {size}  {state}")


def run(args: argparse.Namespace) -> int:
    """Exit status: 0, or 1 when a trained result misses its band."""
    if args.zoo_command == "list":
        _list()
        return 0
    if args.zoo_command == "path":
        print(weights_path(args.names[0]))
        return 0
    progress = not args.no_progress
    if args.zoo_command == "get":
        try:
            cached = get(args.names[0], data_root=args.data_root, progress=progress, say=_say)
        except OutsideBand as err:
            print(f"contrastkit: {err}", file=sys.stderr)
            return 1
        print(cached.weights)
        return 0
    names = list(entries()) if args.all else args.names
    if not names:
        raise ValueError("zoo verify needs NAME... or --all")
    failed = 0
    for name in names:
        entry = find(name)
        inside, value, _ = verify(name, data_root=args.data_root, progress=progress, say=_say)
        low, high = entry.band
        print(
            f"{name}: {entry.metric} {value:.2f} {'inside' if inside else 'OUTSIDE'} [{low:.2f}, {high:.2f}]",
            flush=True,
        )
        failed += not inside
    return 1 if failed else 0
