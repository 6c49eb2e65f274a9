"""rlnas's own exception types, in a module of their own so that every layer can raise them without cycles."""


class ConfigError(ValueError):
    """A preset is malformed; the message names the key and the fix."""
