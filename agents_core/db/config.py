"""Configuration read from the environment (and overridable in code through ``init_db``).

``MONGODB_URI`` and ``MONGODB_DB`` keep the names every MongoDB tool uses; the layer's own
knobs carry the ``AGENTS_CORE_`` prefix, e.g. ``AGENTS_CORE_SERVER_SELECTION_TIMEOUT_MS=2000``.
"""

from __future__ import annotations

import re

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["DEFAULT_URI", "Settings", "mask_uri"]

DEFAULT_URI = "mongodb://localhost:27017"


class Settings(BaseSettings):
    """Connection settings and the limits that keep every document far below 16 MB."""

    model_config = SettingsConfigDict(env_prefix="AGENTS_CORE_", extra="ignore", frozen=True)

    mongodb_uri: str | None = Field(
        default=None, validation_alias=AliasChoices("MONGODB_URI", "AGENTS_CORE_MONGODB_URI")
    )
    mongodb_db: str | None = Field(
        default=None, validation_alias=AliasChoices("MONGODB_DB", "AGENTS_CORE_MONGODB_DB")
    )
    #: How long a call waits for a reachable server before ``DatabaseUnavailableError``.
    server_selection_timeout_ms: int = Field(default=5_000, ge=100)
    #: How long a call waits for the answer of a server it reached (one that froze or stopped
    #: answering) before ``DatabaseUnavailableError``; a retried write may wait twice.
    socket_timeout_ms: int = Field(default=30_000, ge=100)
    #: Largest message ``content`` accepted, in bytes of UTF-8.
    max_message_bytes: int = Field(default=1024 * 1024, ge=1)
    #: Most tool calls one run may embed.
    max_tool_calls_per_run: int = Field(default=1_000, ge=1)
    #: Tool-call input/output larger than this (bytes of UTF-8) is stored outside the run document.
    payload_inline_max_bytes: int = Field(default=64 * 1024, ge=1)
    #: Most tool-call text one run document embeds, in bytes; beyond it payloads are spilled.
    run_inline_budget_bytes: int = Field(default=8 * 1024 * 1024, ge=1)
    #: Largest tool-call input or output accepted at all, in bytes of UTF-8.
    max_payload_bytes: int = Field(default=64 * 1024 * 1024, ge=1)
    #: Most tools one agent may enable.
    max_tools_per_agent: int = Field(default=256, ge=1)


_PASSWORD = re.compile(r"(?P<scheme>mongodb(?:\+srv)?://)(?P<user>[^:@/]*):(?P<password>[^@/]*)@")


def mask_uri(uri: str) -> str:
    """``uri`` with its password (if any) replaced by ``***``: safe to print or log."""
    return _PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:***@", uri)
