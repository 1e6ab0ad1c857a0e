"""One exception root for kgforge.

``RetryableError`` marks transient failures (database unavailable, LLM timeouts); the workers'
``autoretry_for`` uses exactly that branch. Every message says what to do next.
"""


class KGForgeError(Exception):
    """Root of every error kgforge raises on purpose."""


class ConfigError(KGForgeError):
    """A setting is missing or invalid."""


class InvalidInputError(KGForgeError, ValueError):
    """User input was rejected. ``field`` names the offending field, ``reason`` says why."""

    def __init__(self, field: str, reason: str):
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


class DatasetError(KGForgeError):
    """A dataset is missing, unknown or malformed."""


class DatabaseError(KGForgeError):
    """The graph database refused or failed an operation that retrying will not fix."""


class RetryableError(KGForgeError):
    """A transient failure: retrying later may succeed."""


class DatabaseUnavailableError(RetryableError):
    """The graph database cannot be reached (not started, restarting, network)."""


class TrainingDivergedError(KGForgeError):
    """A training loss became NaN or infinite; nothing was saved. Lower the learning rate and retry.

    Raised by every trainer that has this guard (``gnn.train``, ``recommender.train`` and its
    teachers), so a caller (the CLI, a training job) handles one type."""
