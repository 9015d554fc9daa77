"""http_get: GET a URL on one of the configured hosts.

The host check happens on the parsed URL before any connection is made, and redirects are not
followed (a redirect could leave the allowed hosts), so a mission's host list is a real boundary.
"""

from __future__ import annotations

from pathlib import Path

import httpx
from pydantic import Field, field_validator

from agents.tools.base import FunctionTool, ToolConfig, ToolError, function_tool, register_tool


class HttpGetConfig(ToolConfig):
    allowed_hosts: list[str] = Field(min_length=1, description="host or host:port entries the agent may reach")
    timeout_s: float = Field(10.0, gt=0, le=300)
    max_bytes: int = Field(65536, ge=1, le=10_000_000)

    @field_validator("allowed_hosts")
    @classmethod
    def _lower(cls, hosts: list[str]) -> list[str]:
        return [h.strip().lower() for h in hosts]


def check_url(raw: str, allowed_hosts: list[str]) -> httpx.URL:
    """The parsed URL when its scheme is http(s) and its host (or host:port) is allowed."""
    try:
        url = httpx.URL(raw.strip())
    except (httpx.InvalidURL, TypeError) as exc:
        raise ToolError(f"invalid URL {raw.strip()!r}: {exc}") from None
    if url.scheme not in ("http", "https"):
        raise ToolError(f"refused: only http and https URLs are allowed, not {url.scheme or 'no scheme'!r}")
    host = url.host.lower()
    if not host:
        raise ToolError(f"invalid URL {raw.strip()!r}: no host")
    with_port = f"{host}:{url.port}" if url.port is not None else host
    if host not in allowed_hosts and with_port not in allowed_hosts:
        raise ToolError(f"refused: host {host!r} is not allowed; allowed hosts: {', '.join(allowed_hosts)}")
    return url


@register_tool("http_get", "fetch a web page or API: input is an http(s) URL on an allowed host", HttpGetConfig,
               usage="<url>")
def http_get(config: HttpGetConfig, base_dir: Path) -> FunctionTool:
    async def run(tool_input: str) -> str:
        url = check_url(tool_input, config.allowed_hosts)
        try:
            async with httpx.AsyncClient(timeout=config.timeout_s, follow_redirects=False, trust_env=False) as client, \
                    client.stream("GET", url) as response:
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body.extend(chunk)
                    if len(body) > config.max_bytes:
                        break
        except httpx.HTTPError as exc:
            raise ToolError(f"GET {url} failed: {exc.__class__.__name__}: {exc}") from None
        text = bytes(body[: config.max_bytes]).decode(response.encoding or "utf-8", errors="replace")
        note = f"\n[truncated at {config.max_bytes} bytes]" if len(body) > config.max_bytes else ""
        location = response.headers.get("location")
        head = f"HTTP {response.status_code}" + (f" (redirect to {location}, not followed)" if location else "")
        return f"{head}\n{text}{note}"

    return function_tool("http_get", run)
