"""`medseg budget`'s command line: a config, its overrides, and options that each take the values up to the next."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["DEFAULTS", "parse_budget_arguments"]

DEFAULTS = {
    "ratios": ["0.05", "0.1", "0.25", "0.5", "1"],
    "methods": ["supervised"],
    "seeds": ["0", "1", "2"],
    "out": [],
    "select": [],
    "rounds": ["1"],
    "cold-start": ["diversity"],
    "max-per-group": [],
}


def parse_budget_arguments(arguments: Sequence[str]) -> tuple[str, list[str], dict[str, list[str]]]:
    """`CONFIG [key=value ...] [--ratios R ...] [--methods M ...] [--seeds S ...] [--out DIR]` → (config, overrides,
    options); an option takes the values up to the next `--option`.

    Raises:
        ValueError: no config, an unknown option, or an option without values.
    """
    options: dict[str, list[str]] = {}
    positional: list[str] = []
    current: list[str] | None = None
    for token in arguments:
        if token.startswith("--"):
            name = token[2:]
            if name not in DEFAULTS:
                raise ValueError(f"medseg budget: unknown option {token}; options: --{', --'.join(DEFAULTS)}")
            current = options.setdefault(name, [])
        elif current is not None:
            current.append(token)
        else:
            positional.append(token)
    empty = [name for name, values in options.items() if not values]
    if not positional or empty:
        raise ValueError(
            "medseg budget CONFIG [key=value ...] [--ratios R ...] [--methods M ...] [--seeds S ...] [--out DIR] "
            "[--select S [--rounds K] [--cold-start S] [--max-per-group N]]"
            + (f": --{empty[0]} needs values" if empty else ": a config is needed")
        )
    return positional[0], positional[1:], {**DEFAULTS, **options}
