"""User-facing errors: the CLI prints their message on one line and exits non-zero."""


class UserError(Exception):
    """A problem the user can fix (bad argument, missing file, invalid config)."""


class ConfigError(UserError):
    """Invalid configuration; the message names the file and the field."""
