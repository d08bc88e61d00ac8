"""The names a cascade's runs and events carry: what to filter traces and streams by.

Custom events (``on_custom_event`` handlers, ``astream_events`` with
``event == "on_custom_event"``):

* :data:`ESCALATION_EVENT` -- a tier's answer was rejected or the tier raised; the
  data is an :class:`~langchain_cascade.types.EscalationEvent`.
* :data:`REVIEW_EVENT` -- the returned answer is flagged ``needs_review``; the data
  is a :class:`~langchain_cascade.types.ReviewEvent`.
* :data:`WARNING_EVENT` -- dispatched by :class:`~langchain_cascade.CascadeMonitor`
  when the escalation rate passes its limit.

Tags of the child runs (``run.tags``, ``astream_events`` ``tags``):

* ``cascade:tier:<i>`` (:func:`tier_tag`) on each attempt, with metadata
  ``cascade_tier``;
* :data:`GATE_TAG` on each gate run, :data:`FORMATTER_TAG` on the formatter run,
  :data:`ROUTER_TAG` on the run of a router that is a Runnable;
* :data:`NOSTREAM_TAG` on all of them: LangGraph's ``stream_mode="messages"``
  skips runs tagged so, and reads the cascade's own run only;
* :data:`DRAFT_TAG` on a tier's run whose tokens are withheld (every tier whose
  answer a gate must judge first, so a rejected draft is never streamed).

The cascade's own chat-model run has ``ls_provider`` :data:`LS_PROVIDER` in its
metadata: that run's tokens are what a consumer shows.
"""

from __future__ import annotations

__all__ = [
    "DRAFT_TAG",
    "ESCALATION_EVENT",
    "FORMATTER_TAG",
    "GATE_TAG",
    "LS_PROVIDER",
    "NOSTREAM_TAG",
    "REVIEW_EVENT",
    "ROUTER_TAG",
    "TIER_TAG_PREFIX",
    "WARNING_EVENT",
    "tier_tag",
]

ESCALATION_EVENT = "cascade_escalation"
"""Custom event dispatched on the cascade's run at each escalation."""

REVIEW_EVENT = "cascade_needs_review"
"""Custom event dispatched on the cascade's run when the answer needs review."""

WARNING_EVENT = "cascade_escalation_warning"
"""Custom event the monitor dispatches when the escalation rate passes its limit."""

TIER_TAG_PREFIX = "cascade:tier:"
"""Prefix of the tag of each attempt's run; the tier index follows."""

GATE_TAG = "cascade:gate"
"""Tag of each gate's run."""

FORMATTER_TAG = "cascade:formatter"
"""Tag of the formatter's run."""

ROUTER_TAG = "cascade:router"
"""Tag of the router's run (a Runnable or function router; a ``Router`` such as
``RuleRouter`` decides without a run of its own)."""

DRAFT_TAG = "cascade:draft"
"""Tag of an attempt's run whose tokens are withheld from token handlers."""

NOSTREAM_TAG = "nostream"
"""LangGraph's tag for runs whose tokens ``stream_mode="messages"`` skips."""

LS_PROVIDER = "langchain_cascade"
"""The ``ls_provider`` of the cascade's own chat-model runs (how to tell them apart)."""


def tier_tag(tier: int) -> str:
    """The tag of tier ``tier``'s attempt run, ``"cascade:tier:<tier>"``.

    Args:
        tier: The tier's index.

    Returns:
        The tag.
    """
    return f"{TIER_TAG_PREFIX}{tier}"
