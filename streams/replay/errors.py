"""The one exception the replay tool raises for problems a user can fix."""

from __future__ import annotations

__all__ = ["ReplayError"]


class ReplayError(Exception):
    """A bad input, option or broker: the message says what to change. The CLI prints it
    without a traceback."""
