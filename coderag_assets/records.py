"""The base of every record CodeRAG answers with, defined once for all its front ends.

A record is a frozen pydantic model: its fields (with descriptions) are the JSON schema the
MCP tools publish, and :meth:`Record.to_json` is what the CLI's ``--json``, the MCP tools'
structured output and the web API's JSON print — one definition, no hand-copied fields.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Record(BaseModel):
    """A frozen, JSON-ready answer record."""

    model_config = ConfigDict(frozen=True)

    def to_json(self) -> dict[str, object]:
        """The record as JSON-ready data (field order = declaration order)."""
        return self.model_dump(mode="json")
