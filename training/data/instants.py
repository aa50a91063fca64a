"""ISO dates and times given on the command line (--start/--end of the join, the report, drift): naive = UTC."""

from __future__ import annotations

from datetime import UTC, datetime

import typer


def utc_instant(text: str) -> datetime:
    """'2026-12-07', '2026-12-07T12:00' (UTC) or with an offset -> an aware UTC datetime. ValueError names the text."""
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO date/time (e.g. 2026-12-07 or 2026-12-07T12:00:00)") from None
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def option_instant(text: str | None, option: str) -> datetime | None:
    """A command's time option (None when not given); a bad one is typer's usage error naming the option."""
    if text is None:
        return None
    try:
        return utc_instant(text)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint=option) from None
