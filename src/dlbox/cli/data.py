"""`dlbox data`: not implemented yet."""

from __future__ import annotations

import argparse

from dlbox.errors import DlboxError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("data", help="(not implemented yet)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    raise DlboxError("'dlbox data' is not implemented yet")
