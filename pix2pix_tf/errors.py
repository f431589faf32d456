"""The one error a user can fix: its message names the problem and the fix; the commands exit 2 on it."""

from __future__ import annotations


class UsageError(ValueError):
    """A value the user supplied is wrong; the message names the problem and the fix."""
