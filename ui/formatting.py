"""How values look on a page (template filters): numbers, times, durations, raw records."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

from jinja2 import Environment


def num(value: Any, digits: int = 3) -> str:
    """A number, or an em dash for nothing / not-a-number."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.{digits}f}"


def metric(value: Any) -> str:
    """A model metric: whole numbers without decimals, others to four significant digits."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.4g}" if abs(value) < 1000 else f"{value:,.1f}"


def signed(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    return f"{value:+.{digits}f}"


def rate(value: Any) -> str:
    if value is None:
        return "—"
    return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"


def when(value: Any) -> str:
    """UTC, to the second (the store's times are UTC)."""
    if not isinstance(value, datetime):
        return "—" if value is None else str(value)
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value.strftime("%Y-%m-%d %H:%M:%S")


def ms(value: Any) -> str:
    if value is None:
        return "—"
    value = float(value)
    return f"{value:,.0f} ms" if value < 10_000 else f"{value / 1000:,.1f} s"


def raw_text(value: bytes | str | None) -> str:
    """A record's bytes as text where they are text; other bytes as \\xNN."""
    if value is None:
        return ""
    data = value.encode() if isinstance(value, str) else bytes(value)
    text = data.decode("utf-8", "backslashreplace")
    return "".join(c if c.isprintable() or c in "\n\t" else f"\\x{ord(c):02x}" for c in text)


def hexdump(value: bytes | None, limit: int = 512) -> str:
    if not value:
        return ""
    data = bytes(value)[:limit]
    lines = []
    for i in range(0, len(data), 16):
        chunk = data[i:i + 16]
        printable = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        lines.append(f"{i:08x}  {chunk.hex(' '):<47}  {printable}")
    return "\n".join(lines)


def pretty(value: Any) -> str:
    """JSON text indented when it parses, else as it is."""
    if not isinstance(value, str):
        return "" if value is None else str(value)
    text = value.strip()
    if text[:1] in "{[":
        try:
            return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
        except ValueError:
            pass
    return value


def install(env: Environment) -> None:
    env.filters.update(num=num, metric=metric, signed=signed, rate=rate, when=when, ms=ms, raw_text=raw_text,
                       hexdump=hexdump, pretty=pretty)
