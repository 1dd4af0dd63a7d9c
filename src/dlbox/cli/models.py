"""`dlbox models`: the models `dlbox train --model NAME` knows, with their size and recipe."""

from __future__ import annotations

import argparse
import json
from typing import Any


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("models", help="list the models `dlbox train` can train",
                                   description="List the registered models: name, "
                                               "parameters, default recipe, description.")
    parser.add_argument("--json", action="store_true", help="print the list as JSON")
    parser.set_defaults(func=run)


def describe(info: Any) -> dict[str, Any]:
    from dlbox.models.registry import default_model_for

    recipes = {"gpu": info.recipe}
    if info.cpu_recipe is not None:
        recipes["cpu"] = info.cpu_recipe
    return {
        "name": info.name,
        "params": info.params,
        "description": info.description,
        "default_on": [kind for kind in ("cpu", "cuda") if default_model_for(kind) == info.name],
        "recipes": {kind: {"epochs": r.epochs, "batch_size": r.batch_size, "lr": r.lr,
                           "schedule": r.schedule, **r.model_kwargs}
                    for kind, r in recipes.items()},
    }


def recipe_text(entry: dict[str, Any]) -> str:
    parts = []
    for kind, recipe in entry["recipes"].items():
        label = kind if len(entry["recipes"]) > 1 else "any"
        extra = "".join(f", {k} {v}" for k, v in recipe.items()
                        if k not in ("epochs", "batch_size", "lr", "schedule"))
        parts.append(f"{label}: {recipe['epochs']} ep, bs {recipe['batch_size']}, "
                     f"lr {recipe['lr']:g}{extra}")
    return "; ".join(parts)


def run(args: argparse.Namespace) -> int:
    from dlbox.models.registry import list_models

    entries = [describe(info) for info in list_models()]
    if args.json:
        print(json.dumps(entries, indent=2))
        return 0
    rows = [(e["name"] + (f" ({'+'.join(e['default_on'])} default)" if e["default_on"] else ""),
             f"{e['params']:,}", recipe_text(e), e["description"]) for e in entries]
    header = ("MODEL", "PARAMS", "DEFAULT RECIPE", "DESCRIPTION")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(3)]
    for row in [header, *rows]:
        cells = [cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True)]
        print("  ".join([*cells, row[3]]))
    print("(... default): what `dlbox train` trains on that device without --model")
    return 0
