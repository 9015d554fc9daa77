"""The `art ui` web application: aiohttp, server-rendered pages, a little JavaScript for live numbers.

Read-only by construction: only GET and HEAD reach a handler (every other method is answered 405
before routing), and every query goes through ``ui.store.UiStore`` — the store's one read-only
path. Pages load scripts and styles from this app only (Content-Security-Policy), no CDN.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web
from jinja2 import Environment, PackageLoader, select_autoescape

from config.settings import ArtConfig
from ui import formatting
from ui.filters import FilterError
from ui.live import LiveMonitor
from ui.store import UiStore, UiStoreError

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
READ_METHODS = ("GET", "HEAD")
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
CFG: web.AppKey[ArtConfig] = web.AppKey("cfg", ArtConfig)
STORE: web.AppKey[UiStore] = web.AppKey("store", UiStore)
LIVE: web.AppKey[LiveMonitor] = web.AppKey("live", LiveMonitor)
TEMPLATES: web.AppKey[Environment] = web.AppKey("templates", Environment)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def read_only(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse every method that could change something, on every path, before any handler runs."""
    if request.method not in READ_METHODS:
        raise web.HTTPMethodNotAllowed(request.method, list(READ_METHODS), text="art ui is read-only\n",
                                       headers=HEADERS)
    return await handler(request)


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Store and filter problems become a page that says what went wrong, in one line."""
    try:
        response = await handler(request)
    except FilterError as exc:
        response = render(request, "error.html", {"title": "Bad filter", "message": str(exc)}, status=400)
    except UiStoreError as exc:
        response = render(request, "error.html", {"title": "Store unavailable", "message": str(exc)}, status=503)
    except web.HTTPNotFound:
        response = render(request, "error.html", {"title": "Not found", "message": f"nothing at {request.path}"},
                          status=404)
    for key, value in HEADERS.items():
        response.headers.setdefault(key, value)
    return response


def render(request: web.Request, template: str, context: dict[str, Any], status: int = 200) -> web.Response:
    env = request.app[TEMPLATES]
    static = request.app.router["static"]
    page = env.get_template(template).render(request=request, path=request.path,
                                             static=lambda name: str(static.url_for(filename=name)), **context)
    return web.Response(text=page, status=status, content_type="text/html", charset="utf-8")


def templates() -> Environment:
    env = Environment(loader=PackageLoader("ui", "templates"), autoescape=select_autoescape(["html"]),
                      trim_blocks=True, lstrip_blocks=True)
    formatting.install(env)
    return env


def create_app(cfg: ArtConfig, store: UiStore | None = None) -> web.Application:
    from ui import views

    app = web.Application(middlewares=[read_only, errors])
    app[CFG] = cfg
    app[STORE] = store or UiStore(cfg)
    app[LIVE] = LiveMonitor(cfg, app[STORE])
    app[TEMPLATES] = templates()
    views.add_routes(app)
    app.router.add_static("/static/", STATIC, name="static", append_version=True)
    app.cleanup_ctx.append(_lifecycle)
    return app


async def _lifecycle(app: web.Application) -> Any:
    async def release() -> None:
        while True:
            await asyncio.sleep(5)
            await asyncio.to_thread(app[STORE].release_if_idle)

    task = asyncio.create_task(release())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await app[LIVE].close()
    await asyncio.to_thread(app[STORE].close)


async def serve(cfg: ArtConfig, host: str = "127.0.0.1", port: int = 8765,
                ready: Callable[[str], None] | None = None) -> None:
    """Serve until cancelled (Ctrl-C, SIGTERM)."""
    runner = web.AppRunner(create_app(cfg), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    if ready is not None:
        ready(f"http://{host}:{port}")
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
