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
    params = info.params_by_recipe  # the same keys as "recipes"
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
             params_text(e), recipe_text(e), e["description"]) for e in entries]
    header = ("MODEL", "PARAMS", "DEFAULT RECIPE", "DESCRIPTION")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(3)]
    for row in [header, *rows]:
        cells = [cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True)]
        print("  ".join([*cells, row[3]]))
    print("(... default): what `dlbox train` trains on that device without --model")
    return 0
