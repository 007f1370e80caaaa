"""The local tools' one exception type."""


class LocalJobError(Exception):
    """A local training or transform job failed; the message says why."""
