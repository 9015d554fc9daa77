"""Which statements a reader may run, decided by ClickHouse's own parser.

A reader's SQL is first re-formatted by ClickHouse (``formatQuery``), which fails unless the text
is exactly one statement, whatever quotes, ``$$`` strings, comments or backticks hide a ``;``. The
formatted text is what runs, so what was checked is what executes. Its syntax tree (``EXPLAIN
AST``) must be a read (SELECT/WITH, SHOW, DESCRIBE, EXISTS, EXPLAIN of those), write no
``INTO OUTFILE``, and call no function that reaches files, URLs, other servers or dictionaries.
All of this runs on a ``readonly = 1`` engine session, which ClickHouse itself enforces: it refuses
writes, setting changes (``SETTINGS readonly = 0`` included) and most outside table functions;
the tree check covers what ``readonly`` lets through (``INTO OUTFILE``, ``file()`` as a scalar,
``KILL QUERY``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

#: node types of a statement a reader may run (first line of ClickHouse's ``EXPLAIN AST`` dump)
READ_STATEMENTS = frozenset({
    "SelectWithUnionQuery", "ShowTables", "ShowColumns", "ShowIndexes", "ShowFunctions", "ShowSetting",
    "ShowEngineQuery", "ShowProcesslistQuery", "ShowCreateTableQuery", "ShowCreateViewQuery",
    "ShowCreateDatabaseQuery", "DescribeQuery", "ExistsTableQuery", "ExistsDatabaseQuery", "ExistsViewQuery",
    "ExistsDictionaryQuery", "Explain",
})
#: table functions that only compute or read this store; every other one ClickHouse knows is refused
LOCAL_TABLE_FUNCTIONS = frozenset({
    "numbers", "numbers_mt", "zeros", "zeros_mt", "generate_series", "generateseries", "generaterandom",
    "primes", "values", "sqlstandardvalues", "view", "merge", "null",
    "format",  # also the string-formatting scalar; as a table function it parses its literal argument
})

#: run(sql, params) -> the engine's TabSeparatedRaw output, on a readonly = 1 session
Runner = Callable[[str, Mapping[str, str]], str]


class ReadRefused(Exception):
    """A reader's statement is not a plain read of this store (ClickHouse error 164, READONLY)."""

    code = 164

    def __str__(self) -> str:
        return f"Code: 164. DB::Exception: {self.args[0]}. (READONLY)"


#: the query that lists every table function the engine knows (the guard's input)
TABLE_FUNCTIONS_SQL = "SELECT name FROM system.table_functions"


class ReadGuard:
    """Checks reader statements with the engine's parser.

    ``table_functions`` is the engine's own list (``TABLE_FUNCTIONS_SQL``): every one of them not
    known to stay local is refused, so a table function added by a later ClickHouse is refused too.
    """

    def __init__(self, table_functions: Iterable[str]) -> None:
        self._outside = frozenset(n.lower() for n in table_functions) - LOCAL_TABLE_FUNCTIONS

    def canonical(self, run: Runner, sql: str, params: Mapping[str, str]) -> str:
        """The statement as ClickHouse formats it, when it is one read; else ``ReadRefused``
        (or the engine's own error: a syntax error, multi-statements, a setting readonly forbids)."""
        text = run("SELECT formatQuery({art_reader_sql:String})", {"art_reader_sql": _escaped(sql)})
        text = text[:-1] if text.endswith("\n") else text
        self.check_tree(run(f"EXPLAIN AST {text}", params))
        return text

    def check_tree(self, dump: str) -> None:
        """Refuse anything but a read in an ``EXPLAIN AST`` dump.

        Identifiers are printed unescaped, so a backticked name can add lines to the dump; added
        lines can only make a check refuse more, never hide a real node, because every check looks
        for real lines (the first line's type, literals at statement level, any function name).
        """
        lines = [line for line in dump.split("\n") if line.strip()]
        if not lines:
            raise ReadRefused("the statement has no syntax tree")
        root = lines[0].split()[0]
        if root not in READ_STATEMENTS:
            raise ReadRefused(f"readers run reads only (SELECT, SHOW, DESCRIBE, EXISTS, EXPLAIN), not {root}")
        for line in lines[1:]:
            depth = len(line) - len(line.lstrip(" "))
            kind, _, rest = line.strip().partition(" ")
            statement_level = depth == 1 or (root == "Explain" and depth == 2)
            if statement_level and kind == "Literal":
                raise ReadRefused("INTO OUTFILE is not allowed for readers")
            if root == "Explain" and depth == 1 and kind not in READ_STATEMENTS | {"Set", "Identifier"}:
                raise ReadRefused(f"EXPLAIN of {kind} is not allowed for readers")
            if kind == "Function":
                self._check_function(rest.split(" ")[0])

    def _check_function(self, name: str) -> None:
        lowered = name.lower()
        if lowered == "file" or lowered in self._outside:
            raise ReadRefused(f"{name}() reaches outside the store (files, URLs, other servers)")
        if lowered.startswith("dict"):
            raise ReadRefused(f"{name}() reads a dictionary, whose source may lie outside the store")


def _escaped(value: str) -> str:
    """A query parameter value as ClickHouse reads it (TSV escaping: a raw newline would end it)."""
    return (value.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")
            .replace("\0", "\\0"))
