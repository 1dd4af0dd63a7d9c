"""`dlbox predict`: not implemented yet."""

from __future__ import annotations

import argparse

from dlbox.errors import DlboxError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("predict", help="(not implemented yet)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    raise DlboxError("'dlbox predict' is not implemented yet")
