"""Every statement an attacker on this machine tried against the store, and how ClickHouse refuses it.

Templates take ``{db}`` (the target database), ``{out}`` (a file that must never appear),
``{victim}`` (a file whose content must survive), ``{listener}`` (a port that must never see a
connection) and ``{gateway}`` (the running stack's gateway port).
"""

from __future__ import annotations

from dataclasses import dataclass

READONLY = "(READONLY)"
MULTI = "Multi-statements are not allowed"


@dataclass(frozen=True)
class Attack:
    id: str
    sql: str
    refusal: str  # text the refusal must contain (ClickHouse's own error name or message), or any of "a|b"

    def refused(self, output: str) -> bool:
        return any(fragment in output for fragment in self.refusal.split("|"))

    def render(self, **values: object) -> str:
        return self.sql.format(**values)


ATTACKS: list[Attack] = [
    # several statements, the ';' hidden where a regex-based splitter looks away
    Attack("dollar-quotes", "SELECT $$'$$; DROP TABLE steps; SELECT $$'$$", MULTI),
    Attack("plain-multi", "SELECT 1; DROP TABLE steps", MULTI),
    Attack("comment-opener-in-string", "SELECT '/*'; DROP TABLE steps; SELECT '*/'", MULTI),
    Attack("semicolon-in-comment-then-real", "SELECT 1 /* ; */; DROP TABLE steps", MULTI),
    Attack("line-comment-in-string", "SELECT '--'; DROP TABLE steps", MULTI),
    Attack("backtick-semicolon", "SELECT 1 AS `;`; DROP TABLE steps", MULTI),
    Attack("doubled-quote", "SELECT 'it''s'; DROP TABLE steps", MULTI),
    Attack("backslash-quote", "SELECT 'a\\''; DROP TABLE steps; SELECT ''", MULTI),
    Attack("parallel-with", "SELECT 1 PARALLEL WITH DROP TABLE steps", READONLY),
    # plain writes and administration
    Attack("insert", "INSERT INTO steps (session_id, seq) VALUES ('evil', 1)", READONLY),
    Attack("insert-select", "INSERT INTO trajectories (session_id) SELECT 'evil'", READONLY),
    Attack("drop-table", "DROP TABLE steps", READONLY),
    Attack("drop-database", "DROP DATABASE {db}", READONLY),
    Attack("alter-delete", "ALTER TABLE steps DELETE WHERE 1", READONLY),
    Attack("alter-add-column", "ALTER TABLE steps ADD COLUMN evil String", READONLY),
    Attack("truncate", "TRUNCATE TABLE steps", READONLY),
    Attack("system-stop-merges", "SYSTEM STOP MERGES steps", READONLY),
    Attack("system-flush-logs", "SYSTEM FLUSH LOGS", READONLY),
    Attack("create-table", "CREATE TABLE evil (x Int8) ENGINE = Memory", READONLY),
    Attack("create-url-table", "CREATE TABLE evil (x String) ENGINE = URL('http://127.0.0.1:{listener}/', "
                               "LineAsString)", READONLY),
    Attack("create-view", "CREATE VIEW evil AS SELECT 1", READONLY),
    Attack("set-readonly", "SET readonly = 0", READONLY),
    Attack("set-timeout", "SET max_execution_time = 0", READONLY),
    Attack("optimize", "OPTIMIZE TABLE steps FINAL", READONLY),
    Attack("rename", "RENAME TABLE steps TO evil", READONLY),
    Attack("grant", "GRANT ALL ON *.* TO default", READONLY),
    Attack("create-user", "CREATE USER evil IDENTIFIED WITH no_password", READONLY),
    Attack("detach", "DETACH TABLE steps", READONLY),
    Attack("attach", "ATTACH TABLE evil (x Int8) ENGINE = Memory", READONLY),
    Attack("kill", "KILL QUERY WHERE 1", READONLY),
    # reaching files, URLs, other servers, programs, the engine's own process
    Attack("file-table", "SELECT * FROM file('/etc/passwd', 'LineAsString')", READONLY),
    Attack("file-scalar", "SELECT file('/etc/passwd')", READONLY),
    Attack("file-in-subquery", "SELECT (SELECT count() FROM file('/etc/passwd', 'LineAsString'))", READONLY),
    Attack("describe-file", "DESCRIBE file('/etc/passwd', 'LineAsString')", READONLY),
    Attack("url", "SELECT * FROM url('http://127.0.0.1:{listener}/x', 'LineAsString')", READONLY),
    Attack("url-in", "SELECT 1 IN url('http://127.0.0.1:{listener}/x', 'LineAsString')", READONLY),
    Attack("url-to-gateway", "SELECT * FROM url('http://127.0.0.1:{gateway}/?query=DROP%20TABLE%20art.steps', "
                             "'LineAsString')", READONLY),
    Attack("remote", "SELECT * FROM remote('127.0.0.1:{listener}', system.one)", READONLY),
    Attack("s3", "SELECT * FROM s3('http://127.0.0.1:{listener}/bucket/key.csv', 'LineAsString')", READONLY),
    Attack("mysql", "SELECT * FROM mysql('127.0.0.1:{listener}', 'db', 't', 'u', 'p')", READONLY),
    Attack("postgresql", "SELECT * FROM postgresql('127.0.0.1:{listener}', 'db', 't', 'u', 'p')", READONLY),
    Attack("executable", "SELECT * FROM executable('evil.sh', 'TabSeparated', 'x String')", READONLY),
    Attack("python-objects", "SELECT * FROM python('secret')", READONLY),
    Attack("filesystem", "SELECT * FROM filesystem('/etc')", READONLY),
    Attack("dictionary-table", "SELECT * FROM dictionary('evil')", READONLY),
    Attack("dict-get", "SELECT dictGet('evil', 'x', toUInt64(1))", READONLY),
    Attack("create-dictionary", "CREATE DICTIONARY evil (k UInt64, v String) PRIMARY KEY k SOURCE(HTTP(url "
                                "'http://127.0.0.1:{listener}/' format 'TSV')) LAYOUT(FLAT()) LIFETIME(0)", READONLY),
    # writing files from a read
    Attack("outfile", "SELECT 'x' AS x INTO OUTFILE '{out}'", READONLY),
    Attack("outfile-truncate", "SELECT 'x' AS x INTO OUTFILE '{victim}' TRUNCATE", READONLY),
    Attack("outfile-append", "SELECT 'x' AS x INTO OUTFILE '{victim}' APPEND", READONLY),
    Attack("outfile-show", "SHOW TABLES INTO OUTFILE '{out}'", READONLY),
    Attack("outfile-explain", "EXPLAIN SELECT 1 INTO OUTFILE '{out}'", READONLY),
    # lifting the limits from the query text
    Attack("settings-readonly", "SELECT 1 SETTINGS readonly = 0", READONLY),
    Attack("settings-timeout", "SELECT count() FROM numbers(1000000000000) SETTINGS max_execution_time = 0",
           READONLY),
    # results too big or too slow for one reader: whichever limit a loaded machine meets first
    # (test_gateway.py checks the size limits alone)
    Attack("huge-result", "SELECT toString(number) || repeat('y', 1000) FROM numbers(100000000)",
           "(TOO_MANY_ROWS_OR_BYTES)|(TIMEOUT_EXCEEDED)|(MEMORY_LIMIT_EXCEEDED)"),
    Attack("huge-block", "SELECT repeat('x', 1000000) FROM numbers(2000)",
           "(MEMORY_LIMIT_EXCEEDED)|(TIMEOUT_EXCEEDED)"),
    Attack("endless", "SELECT count() FROM numbers(1000000000000)", "(TIMEOUT_EXCEEDED)"),
]
