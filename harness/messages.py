"""Error messages that echo user input: one line, bounded length, naming the file."""

from __future__ import annotations


def clip(text, limit: int = 200) -> str:
    """`text` on one line, at most `limit` characters (error messages echo user input)."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def os_error(path, exc: OSError, doing: str = "cannot write") -> ValueError:
    """A one-line ValueError naming `path` for an OSError met while using it."""
    where = exc.filename if getattr(exc, "filename", None) else path
    return ValueError(f"{doing} {clip(where, 150)}: {exc.strerror or type(exc).__name__}")
