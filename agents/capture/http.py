"""Small HTTP pieces both capture servers share: bounded body reads and JSON errors."""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

KEEP_OF_REFUSED = 64 * 1024  # what a dead letter keeps of a body that was too large


async def read_limited(request: web.Request, limit: int) -> tuple[bytes, bool]:
    """The body, or its first bytes and True when it exceeds ``limit`` (never reads it all)."""
    if request.content_length is not None and request.content_length > limit:
        return await request.content.read(KEEP_OF_REFUSED), True
    buf = bytearray()
    async for chunk in request.content.iter_chunked(256 * 1024):
        buf += chunk
        if len(buf) > limit:
            return bytes(buf[:KEEP_OF_REFUSED]), True
    return bytes(buf), False


def json_error(status: int, message: str, headers: Mapping[str, str] | None = None) -> web.Response:
    """An error in the OpenAI shape, which clients of either server already know how to show."""
    return web.json_response({"error": {"message": message, "type": "art_capture_error", "code": status}},
                             status=status, headers=headers)
