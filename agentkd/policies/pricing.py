"""Token prices, for the cost of an episode.

Prices are USD per one million tokens, as ``(input, output)`` pairs keyed by model name. Names
match exactly or by prefix, longest first (``"gpt-4o-mini-2024-07-18"`` uses ``"gpt-4o-mini"``),
and a provider prefix such as ``"openai/"`` is ignored. Models missing from the table — local
students, for instance — cost nothing.

The built-in table holds a few **example** list prices only; they change, so give your own
(a dict, or a JSON file read by :func:`load_prices`) for real accounting::

    {"my-teacher": [3.0, 15.0], "gpt-4o": {"input": 2.5, "output": 10.0}}

The cascade's default prices (`DEFAULT_STUDENT_PRICE`, `DEFAULT_TEACHER_PRICE`) and `token_cost`,
the cost of tokens at one ``(input, output)`` price, live here too (``agentkd.replay.cascade``
re-exports them).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from agentkd.errors import ConfigError

__all__ = ["DEFAULT_STUDENT_PRICE", "DEFAULT_TEACHER_PRICE", "EXAMPLE_PRICES", "Prices", "cost_usd", "load_prices",
           "price_for", "token_cost"]

Prices = Mapping[str, tuple[float, float]]

#: EXAMPLE list prices (USD per 1M input, output tokens) as published by the providers in 2025.
#: Not kept up to date: pass your own table for real numbers.
EXAMPLE_PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "claude-3-5-haiku": (0.80, 4.00),
    "claude-sonnet-4": (3.00, 15.00),
}

#: The cascade's and replay's default prices (USD per 1M input, output tokens): assumptions — a hosted
#: sub-1B model for the student, GPT-4o list prices for the teacher — to be replaced with your own.
DEFAULT_STUDENT_PRICE = (0.05, 0.10)
DEFAULT_TEACHER_PRICE = (2.50, 10.00)


def token_cost(prompt_tokens: int, completion_tokens: int, price: tuple[float, float]) -> float:
    """Cost in USD of ``prompt_tokens`` in and ``completion_tokens`` out at ``price`` (USD per 1M input, output)."""
    return (prompt_tokens * price[0] + completion_tokens * price[1]) / 1e6


def _pair(name: str, value: object, source: str) -> tuple[float, float]:
    if isinstance(value, Mapping):
        value = (value.get("input"), value.get("output"))
    try:
        inp, out = value  # type: ignore[misc]
        pair = (float(inp), float(out))
    except (TypeError, ValueError):
        raise ConfigError(
            f"{source}: price of {name!r} must be [input, output] or {{'input': x, 'output': y}} "
            f"in USD per 1M tokens, got {value!r}"
        ) from None
    if min(pair) < 0:
        raise ConfigError(f"{source}: price of {name!r} is negative: {pair}")
    return pair


def load_prices(path: str | Path) -> dict[str, tuple[float, float]]:
    """Read a price table from a JSON file: ``{name: [input, output] | {"input": x, "output": y}}``."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read price file {path}: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise ConfigError(f"price file {path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"price file {path} must hold a JSON object of model name -> price")
    return {str(name): _pair(name, value, str(path)) for name, value in data.items()}


def _table(prices: Prices | str | Path | None) -> dict[str, tuple[float, float]]:
    if prices is None:
        return dict(EXAMPLE_PRICES)
    if isinstance(prices, str | Path):
        return {**EXAMPLE_PRICES, **load_prices(prices)}
    return {**EXAMPLE_PRICES, **{name: _pair(name, v, "prices") for name, v in prices.items()}}


def price_for(model_name: str, prices: Prices | str | Path | None = None) -> tuple[float, float] | None:
    """``(input, output)`` USD per 1M tokens for ``model_name``, or None when the table lacks it.

    ``prices`` (a dict or a JSON file) extends and overrides the example table.
    """
    table = _table(prices)
    for name in (model_name, model_name.rsplit("/", 1)[-1]):
        if name in table:
            return table[name]
        matches = [key for key in table if name.startswith(key)]
        if matches:
            return table[max(matches, key=len)]
    return None


def cost_usd(
    prompt_tokens: int, completion_tokens: int, model_name: str, prices: Prices | str | Path | None = None
) -> float:
    """Cost in USD of ``prompt_tokens`` in and ``completion_tokens`` out of ``model_name`` (0.0 if unpriced)."""
    pair = price_for(model_name, prices)
    if pair is None:
        return 0.0
    return (prompt_tokens * pair[0] + completion_tokens * pair[1]) / 1_000_000
