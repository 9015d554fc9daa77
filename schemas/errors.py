"""One root error for the contract package; each names the problem precisely."""


class SchemaError(Exception):
    """Root of every error raised by ``schemas``."""


class CodecError(SchemaError):
    """A message could not be turned into a record (or back)."""


class BadMagicByte(CodecError):
    def __init__(self, found: int) -> None:
        super().__init__(f"bad magic byte: expected 0, found {found}")


class UnknownSchemaId(CodecError):
    def __init__(self, schema_id: int) -> None:
        self.schema_id = schema_id
        super().__init__(f"unknown schema id {schema_id}: not in the schema registry")


class TruncatedMessage(CodecError):
    def __init__(self, detail: str) -> None:
        super().__init__(f"truncated message: {detail}")


class InvalidRecord(CodecError):
    """The bytes decoded, but the record breaks the model (types, rules)."""


class RegistryError(SchemaError):
    """The schema registry refused or could not be reached."""
