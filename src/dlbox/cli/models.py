"""`dlbox models`: the models `dlbox train --model NAME` knows, with their size and recipe."""

from __future__ import annotations

import argparse
import json
import shutil
import textwrap
from typing import Any


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("models", help="list the models `dlbox train` can train",
                                   description="List the registered models: name, "
                                               "parameters, default recipe, description. "
                                               "One table row each; on a terminal too "
                                               "narrow for the table, one block each.")
    parser.add_argument("--json", action="store_true", help="print the list as JSON")
    parser.set_defaults(func=run)


def describe(info: Any) -> dict[str, Any]:
    from dlbox.models.registry import default_model_for

    # Both keys always (review: a script looking up the CPU recipe of `tiny` found none): the
    # CPU's is the GPU's where the model has no recipe of its own for it.
    recipes = {"gpu": info.recipe, "cpu": info.cpu_recipe or info.recipe}
    params = info.params_by_recipe
    params = {"gpu": params["gpu"], "cpu": params.get("cpu", params["gpu"])}
    return {
        "name": info.name,
        "params": params["gpu"],  # the default (GPU) recipe's, as before params_by_recipe
        "params_by_recipe": params,
        "description": info.description,
        "default_on": [kind for kind in ("cpu", "cuda") if default_model_for(kind) == info.name],
        "recipes": {kind: {"epochs": r.epochs, "batch_size": r.batch_size, "lr": r.lr,
                           "schedule": r.schedule, **r.model_kwargs}
                    for kind, r in recipes.items()},
    }


def params_text(entry: dict[str, Any]) -> str:
    """One count, or one per recipe where their model_kwargs make different models:
    `6,573,120`, `1.97M gpu / 0.29M cpu`."""
    counts = entry["params_by_recipe"]
    if len(set(counts.values())) == 1:
        return f"{entry['params']:,}"
    if min(counts.values()) >= 10_000:  # millions with two decimals say it at a glance
        return " / ".join(f"{count / 1e6:.2f}M {kind}" for kind, count in counts.items())
    return " / ".join(f"{count:,} {kind}" for kind, count in counts.items())


def recipe_parts(entry: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, settings) per recipe: ("gpu", "16 ep, bs 512, lr 0.4"), or one "any" where
    the CPU's recipe is the GPU's."""
    parts = []
    recipes = entry["recipes"]
    one = recipes["gpu"] == recipes["cpu"]
    for kind, recipe in ({"any": recipes["gpu"]} if one else recipes).items():
        label = kind
        extra = "".join(f", {k} {v}" for k, v in recipe.items()
                        if k not in ("epochs", "batch_size", "lr", "schedule"))
        parts.append((label, f"{recipe['epochs']} ep, bs {recipe['batch_size']}, "
                             f"lr {recipe['lr']:g}{extra}"))
    return parts


def recipe_text(entry: dict[str, Any]) -> str:
    return "; ".join(f"{label}: {text}" for label, text in recipe_parts(entry))


BLOCK_INDENT = "    "  # a model's lines under its name, when the table does not fit


def run(args: argparse.Namespace) -> int:
    from dlbox.models.registry import list_models

    entries = [describe(info) for info in list_models()]
    if args.json:
        print(json.dumps(entries, indent=2))
        return 0
    names = [e["name"] + (f" ({'+'.join(e['default_on'])} default)" if e["default_on"] else "")
             for e in entries]
    rows = [(name, params_text(e), recipe_text(e), e["description"])
            for name, e in zip(names, entries, strict=True)]
    header = ("MODEL", "PARAMS", "DEFAULT RECIPE", "DESCRIPTION")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(3)]
    table_width = sum(widths) + 2 * len(widths) + max(len(row[3]) for row in [header, *rows])
    columns = terminal_columns()
    if columns is None or table_width <= columns:
        for row in [header, *rows]:
            cells = [cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True)]
            print("  ".join([*cells, row[3]]))
    else:  # the table would wrap every row: one block per model, wrapped to the width
        for name, entry in zip(names, entries, strict=True):
            print(f"{name}  {params_text(entry)}")
            lines = [f"{label} recipe: {text}" for label, text in recipe_parts(entry)]
            for text in [*lines, entry["description"]]:
                print(textwrap.fill(text, width=columns, initial_indent=BLOCK_INDENT,
                                    subsequent_indent=BLOCK_INDENT * 2,
                                    break_on_hyphens=False))
            print()
    footnote = "(... default): what `dlbox train` trains on that device without --model"
    print(footnote if columns is None else textwrap.fill(footnote, width=columns))
    return 0



def terminal_columns() -> int | None:
    """The width to fit: $COLUMNS, else the terminal's; None when stdout is no terminal
    (a pipe or a file), which gets the table with one line per model, whatever its width."""
    columns = shutil.get_terminal_size(fallback=(0, 0)).columns
    return max(columns, 40) if columns > 0 else None
