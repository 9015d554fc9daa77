"""Tools: sandboxed files, the safe calculator, host-limited http_get, lookup, the registry."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from agents.missions import ToolSpec
from agents.tools import REGISTRY, ToolConfigError, ToolError, build_toolbox, validate_tool_config
from agents.tools.calculator import Calculator, CalculatorConfig, format_number
from agents.tools.http_get import check_url


def toolbox(tmp_path: Path, *specs: tuple[str, dict[str, Any]]):  # type: ignore[no-untyped-def]
    return build_toolbox([ToolSpec(name=n, config=c) for n, c in specs], tmp_path)


@pytest.fixture
def sandbox(tmp_path: Path) -> Path:
    root = tmp_path / "box"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "a.txt").write_text("hello")
    (tmp_path / "secret.txt").write_text("top secret")
    (tmp_path / "outside").mkdir()
    os.symlink(tmp_path / "secret.txt", root / "leak.txt")
    os.symlink(tmp_path / "outside", root / "door")
    os.symlink(root / "sub" / "a.txt", root / "alias.txt")  # stays inside: allowed
    return root


# --- files -----------------------------------------------------------------------------------


async def test_file_read_inside_the_sandbox(sandbox: Path) -> None:
    tools = toolbox(sandbox.parent, ("file_read", {"base_path": "box"}))
    assert await tools.call("file_read", "sub/a.txt") == "hello"
    assert await tools.call("file_read", '{"path": "sub/a.txt"}') == "hello"
    assert await tools.call("file_read", str(sandbox / "sub" / "a.txt")) == "hello"  # absolute but inside
    assert await tools.call("file_read", "alias.txt") == "hello"  # symlink that stays inside


@pytest.mark.parametrize(("given", "expected"), [
    ("../secret.txt", "path traversal refused: '../secret.txt' contains '..'; paths must stay inside the sandbox"),
    ("sub/../../secret.txt", "path traversal refused: 'sub/../../secret.txt' contains '..'"),
    ("/etc/passwd", "absolute path refused: '/etc/passwd' is outside the sandbox"),
    ("leak.txt", "symlink refused: 'leak.txt' resolves to"),
    ("door/x.txt", "symlink refused: 'door/x.txt' resolves to"),
    ("", "no path given"),
    ("sub/missing.txt", "no such file: sub/missing.txt"),
])
async def test_file_read_refusals(sandbox: Path, given: str, expected: str) -> None:
    tools = toolbox(sandbox.parent, ("file_read", {"base_path": "box"}))
    with pytest.raises(ToolError) as info:
        await tools.call("file_read", given)
    assert str(info.value).startswith(expected)


async def test_file_read_refuses_absolute_path_to_the_secret(sandbox: Path) -> None:
    tools = toolbox(sandbox.parent, ("file_read", {"base_path": "box"}))
    with pytest.raises(ToolError, match=r"absolute path refused"):
        await tools.call("file_read", str(sandbox.parent / "secret.txt"))


async def test_file_read_truncates(sandbox: Path) -> None:
    tools = toolbox(sandbox.parent, ("file_read", {"base_path": "box", "max_bytes": 3}))
    assert await tools.call("file_read", "sub/a.txt") == "hel\n[truncated at 3 bytes]"


async def test_file_write_inside_and_refusals(sandbox: Path) -> None:
    tools = toolbox(sandbox.parent, ("file_write", {"base_path": "box"}))
    assert await tools.call("file_write", '{"path": "out/new.txt", "content": "data"}') == \
        "wrote 4 bytes to out/new.txt"
    assert (sandbox / "out" / "new.txt").read_text() == "data"
    assert await tools.call("file_write", "notes.md\nline one\nline two") == "wrote 17 bytes to notes.md"
    assert (sandbox / "notes.md").read_text() == "line one\nline two"

    with pytest.raises(ToolError, match=r"^path traversal refused: '\.\./evil.txt'"):
        await tools.call("file_write", '{"path": "../evil.txt", "content": "x"}')
    with pytest.raises(ToolError, match=r"^symlink refused: 'leak.txt' resolves to"):
        await tools.call("file_write", "leak.txt\noverwritten")
    with pytest.raises(ToolError, match=r"^symlink refused: 'door/planted.txt'"):
        await tools.call("file_write", "door/planted.txt\nx")
    with pytest.raises(ToolError, match=r"^absolute path refused"):
        await tools.call("file_write", "/tmp/evil.txt\nx")
    with pytest.raises(ToolError, match=r"is a folder"):
        await tools.call("file_write", "sub\nx")
    with pytest.raises(ToolError, match=r"not valid JSON"):
        await tools.call("file_write", '{"path": ')
    for lone in ("3076 * 4", "out/report.txt\n", "  out/report.txt  "):  # a path and nothing to write
        with pytest.raises(ToolError) as refused:
            await tools.call("file_write", lone)
        assert str(refused.value) == (f"nothing to write to {lone.strip()!r}: give "
                                      '{"path": "<file path>", "content": "<text>"} or the path on the first line '
                                      "and the content after it")
    assert await tools.call("file_write", '{"path": "empty.txt", "content": ""}') == "wrote 0 bytes to empty.txt"
    assert not (sandbox / "3076 * 4").exists() and not (sandbox / "out" / "report.txt").exists()
    assert (sandbox.parent / "secret.txt").read_text() == "top secret"
    assert not (sandbox.parent / "evil.txt").exists() and not (sandbox.parent / "outside" / "planted.txt").exists()


# --- calculator ------------------------------------------------------------------------------


@pytest.mark.parametrize(("expr", "value"), [
    ("2 + 3 * 4", "14"), ("(1 + 2) ** 3", "27"), ("-7 // 2", "-4"), ("7 % 3", "1"), ("10 / 4", "2.5"),
    ("-(-3)", "3"), ("+5", "5"), ("2 ** -1", "0.5"), ("sqrt(16)", "4"), ("max(1, 7, 3)", "7"),
    ("round(2.567, 2)", "2.57"), ("floor(pi)", "3"), ("1e3 + 1", "1001"), ("17*23", "391"),
    ("2 ** 100", "1267650600228229401496703205376"),
])
async def test_calculator_values(tmp_path: Path, expr: str, value: str) -> None:
    assert await toolbox(tmp_path, ("calculator", {})).call("calculator", expr) == value


@pytest.mark.parametrize(("expr", "message"), [
    ("__import__('os')", "function '__import__' is not allowed"),
    ("__import__('os').system('true')", "function \"__import__('os').system\" is not allowed"),
    ("x + 1", "name 'x' is not allowed"),
    ("(1).real", "attribute access is not allowed"),
    ("math.pi", "attribute access is not allowed"),
    ("9 ** 9 ** 9", "exponent too large: 387420489"),
    ("10 ** 5000", "result too large: about 16609 bits"),
    ("2.0 ** 5000", "result too large"),
    ("1e308 * 10", "result is not a finite number: inf"),
    ("1 / 0", "division by zero"),
    ("5 % 0", "division by zero"),
    ("'a' * 3", "only numbers are allowed, not 'a'"),
    ("True + 1", "only numbers are allowed, not True"),
    ("[1, 2]", "List is not allowed"),
    ("lambda: 1", "Lambda is not allowed"),
    ("sqrt(-1)", "math error: math domain error"),
    ("(-8) ** 0.5", "complex results are not supported"),
    ("1 +", "not an arithmetic expression"),
    ("", "empty expression"),
    ("(" * 300 + "1" + ")" * 300, "nested"),
    ("sqrt(x=4)", "keyword arguments are not allowed"),
    ("1 if 1 else 2", "IfExp is not allowed"),
])
async def test_calculator_refusals(tmp_path: Path, expr: str, message: str) -> None:
    with pytest.raises(ToolError) as info:
        await toolbox(tmp_path, ("calculator", {})).call("calculator", expr)
    assert message in str(info.value)


def test_calculator_limits_are_configurable() -> None:
    calc = Calculator(CalculatorConfig(max_length=5, max_exponent=3))
    with pytest.raises(ToolError, match=r"expression too long: 6 characters, limit 5"):
        calc.evaluate("1+2+34")
    with pytest.raises(ToolError, match=r"exponent too large: 4, limit 3"):
        calc.evaluate("2**4")
    assert format_number(4.0) == "4" and format_number(0.1 + 0.2) == "0.30000000000000004"


# --- http_get --------------------------------------------------------------------------------


@pytest.fixture
def web() -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            if self.path == "/away":
                self.send_response(302)
                self.send_header("Location", "http://example.com/")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = f"hello from {self.path}".encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


async def test_http_get_allowed_loopback(tmp_path: Path, web: str) -> None:
    tools = toolbox(tmp_path, ("http_get", {"allowed_hosts": ["127.0.0.1"]}))
    assert await tools.call("http_get", f"http://{web}/page?q=1") == "HTTP 200\nhello from /page?q=1"
    assert await tools.call("http_get", f"http://{web}/away") == \
        "HTTP 302 (redirect to http://example.com/, not followed)\n"
    short = toolbox(tmp_path, ("http_get", {"allowed_hosts": [web], "max_bytes": 5}))
    assert await short.call("http_get", f"http://{web}/x") == "HTTP 200\nhello\n[truncated at 5 bytes]"


@pytest.mark.parametrize(("url", "message"), [
    ("http://example.com/", "refused: host 'example.com' is not allowed; allowed hosts: 127.0.0.1"),
    ("http://127.0.0.2/", "refused: host '127.0.0.2' is not allowed"),
    ("http://localhost/", "refused: host 'localhost' is not allowed"),
    ("http://127.0.0.1.evil.test/", "refused: host '127.0.0.1.evil.test' is not allowed"),
    ("file:///etc/passwd", "refused: only http and https URLs are allowed, not 'file'"),
    ("ftp://127.0.0.1/", "refused: only http and https URLs are allowed, not 'ftp'"),
    ("not a url", "refused: only http and https URLs are allowed"),
])
async def test_http_get_refuses_other_hosts_before_connecting(tmp_path: Path, url: str, message: str) -> None:
    tools = toolbox(tmp_path, ("http_get", {"allowed_hosts": ["127.0.0.1"]}))
    with pytest.raises(ToolError) as info:
        await tools.call("http_get", url)
    assert str(info.value).startswith(message)


def test_http_get_host_with_port_entries(web: str) -> None:
    assert check_url(f"http://{web}/", [web]).host == "127.0.0.1"
    with pytest.raises(ToolError, match=r"host '127.0.0.1' is not allowed"):
        check_url("http://127.0.0.1:1/", [web])


async def test_http_get_connection_failure_is_a_tool_error(tmp_path: Path) -> None:
    tools = toolbox(tmp_path, ("http_get", {"allowed_hosts": ["127.0.0.1"], "timeout_s": 2}))
    with pytest.raises(ToolError, match=r"^GET http://127.0.0.1:1/ failed: ConnectError"):
        await tools.call("http_get", "http://127.0.0.1:1/")


# --- lookup ----------------------------------------------------------------------------------


async def test_lookup_ranks_lines(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    (docs / "deep").mkdir(parents=True)
    (docs / "a.txt").write_text("Paris is the capital of France\nLyon is in France\nnothing here\n")
    (docs / "deep" / "b.md").write_text("The capital of Italy is Rome\n")
    (docs / "ignored.csv").write_text("capital France Paris\n")
    (tmp_path / "private.txt").write_text("capital France Paris secret\n")
    os.symlink(tmp_path / "private.txt", docs / "link.txt")
    tools = toolbox(tmp_path, ("lookup", {"folder": "docs", "max_results": 3}))
    assert await tools.call("lookup", "capital of France?") == (
        "a.txt:1: Paris is the capital of France\n"
        "deep/b.md:1: The capital of Italy is Rome\n"
        "a.txt:2: Lyon is in France")
    assert await tools.call("lookup", "zebra") == "no lines match 'zebra'"
    with pytest.raises(ToolError, match=r"empty query"):
        await tools.call("lookup", "  ?! ")


# --- registry --------------------------------------------------------------------------------


def test_registry_and_config_errors(tmp_path: Path) -> None:
    assert set(REGISTRY) >= {"file_read", "file_write", "calculator", "http_get", "lookup"}
    with pytest.raises(ToolConfigError, match=r"^tools.2.config.allowed_hosts: Field required$"):
        validate_tool_config("http_get", {}, "tools.2.")
    with pytest.raises(ToolConfigError, match=r"^config.base_pth: Extra inputs are not permitted$"):
        validate_tool_config("file_read", {"base_pth": "."})
    with pytest.raises(ToolConfigError, match=r"^name: unknown tool 'shell'"):
        validate_tool_config("shell", {})


async def test_a_crashing_tool_becomes_a_tool_error() -> None:
    from agents.tools import FunctionTool, Toolbox

    async def broken(_: str) -> str:
        raise KeyError("boom")

    tools = Toolbox([FunctionTool("broken", "always fails", broken)])
    with pytest.raises(ToolError, match=r"^broken failed: KeyError: 'boom'$"):
        await tools.call("broken", "")
    assert tools.describe() == "- broken: always fails"
