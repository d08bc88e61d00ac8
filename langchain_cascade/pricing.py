"""Prices and costs: what each attempt and each gate cost, in dollars.

A :class:`ModelPrice` per model name (as the cascade reports it in
``response_metadata["cascade"]["attempts"][i]["model"]``, and as gate model calls
report it in their ``model_name``). A missing price or missing usage makes a cost
*unknown* (``None``), never zero.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from langchain_core.messages import UsageMetadata
from langchain_core.messages.ai import add_usage
from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ModelPrice", "PriceTable", "price_of", "sum_known", "sum_usage"]


class ModelPrice(BaseModel):
    """The price of one model.

    Attributes:
        input_per_million: Dollars per million input (prompt) tokens.
        output_per_million: Dollars per million output (completion) tokens.
        per_call: Dollars per request, if the provider charges one.

    Example:
        .. code-block:: python

            from langchain_cascade.pricing import ModelPrice

            gpt4 = ModelPrice(input_per_million=10.0, output_per_million=30.0)
            gpt4.cost({"input_tokens": 1000, "output_tokens": 100, "total_tokens": 1100})
            # 0.013
    """

    model_config = ConfigDict(frozen=True)

    input_per_million: float = Field(ge=0.0)
    output_per_million: float = Field(ge=0.0)
    per_call: float = Field(default=0.0, ge=0.0)

    def cost(self, usage: UsageMetadata | None) -> float | None:
        """The cost of one call, or ``None`` when its usage is unknown.

        Args:
            usage: The call's token usage.

        Returns:
            Dollars.
        """
        if usage is None:
            return None
        return (
            self.per_call
            + usage.get("input_tokens", 0) * self.input_per_million / 1e6
            + usage.get("output_tokens", 0) * self.output_per_million / 1e6
        )


PriceTable = Mapping[str, ModelPrice]
"""Prices by model name."""


def price_of(
    prices: PriceTable, model: str, usage: UsageMetadata | None
) -> float | None:
    """The cost of ``usage`` on ``model``, or ``None`` when price or usage is unknown.

    Args:
        prices: Prices by model name.
        model: The model's name.
        usage: Its token usage.

    Returns:
        Dollars, or ``None``.
    """
    price = prices.get(model)
    return None if price is None else price.cost(usage)


def sum_known(costs: Iterable[float | None]) -> float | None:
    """The sum of costs, or ``None`` as soon as one of them is unknown.

    Args:
        costs: Costs, ``None`` for unknown.

    Returns:
        The total, or ``None``.
    """
    total = 0.0
    for cost in costs:
        if cost is None:
            return None
        total += cost
    return total


def sum_usage(parts: Iterable[UsageMetadata | None]) -> UsageMetadata | None:
    """The sum of token usages, skipping ``None``; ``None`` when there is none.

    The one place usages are added up (attempts, gates, combinations).

    Args:
        parts: Usages.

    Returns:
        Their sum.
    """
    total: UsageMetadata | None = None
    for part in parts:
        if part:
            total = part if total is None else add_usage(total, part)
    return total
