"""A callback handler that records the run tree, for nesting assertions."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler


@dataclass
class Run:
    run_id: UUID
    parent_run_id: UUID | None
    name: str
    kind: str
    tags: list[str]
    metadata: dict[str, Any]


@dataclass(eq=False)
class RunRecorder(BaseCallbackHandler):
    runs: dict[UUID, Run] = field(default_factory=dict)
    events: list[tuple[str, Any, UUID]] = field(default_factory=list)
    tokens: list[tuple[UUID, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    run_inline: bool = True

    def _add(self, kind: str, serialized: Any, kwargs: dict[str, Any]) -> None:
        name = kwargs.get("name") or (serialized or {}).get("name") or kind
        with self.lock:
            self.runs[kwargs["run_id"]] = Run(
                run_id=kwargs["run_id"],
                parent_run_id=kwargs.get("parent_run_id"),
                name=name,
                kind=kind,
                tags=list(kwargs.get("tags") or []),
                metadata=dict(kwargs.get("metadata") or {}),
            )

    def on_chat_model_start(
        self, serialized: Any, messages: Any, **kwargs: Any
    ) -> None:
        self._add("llm", serialized, kwargs)

    def on_chain_start(self, serialized: Any, inputs: Any, **kwargs: Any) -> None:
        self._add("chain", serialized, kwargs)

    def on_llm_new_token(self, token: Any, **kwargs: Any) -> None:
        with self.lock:
            self.tokens.append((kwargs["run_id"], token))

    def on_custom_event(self, name: str, data: Any, **kwargs: Any) -> None:
        with self.lock:
            self.events.append((name, data, kwargs["run_id"]))

    def tagged(self, tag: str) -> list[Run]:
        return [r for r in self.runs.values() if tag in r.tags]

    def cascade_runs(self) -> list[Run]:
        return [
            r
            for r in self.runs.values()
            if r.kind == "llm" and r.metadata.get("ls_provider") == "langchain_cascade"
        ]

    def is_descendant(self, run: Run, ancestor: UUID) -> bool:
        parent = run.parent_run_id
        while parent is not None:
            if parent == ancestor:
                return True
            parent_run = self.runs.get(parent)
            parent = parent_run.parent_run_id if parent_run else None
        return False
