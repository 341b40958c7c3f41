"""Errors that reach the user as one line, never as a traceback."""


class AudioAEError(Exception):
    """Base class: the command-line tools print these as one line and exit with status 2."""


class ConfigError(AudioAEError, ValueError):
    """A configuration that cannot work; the message names the offending keys."""


class CheckpointError(AudioAEError):
    """A checkpoint that is missing, truncated, foreign or unsafe to load."""
