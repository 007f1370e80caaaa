"""The exceptions that cross module boundaries in LSTM-AD, sorted into the user's failures and ours.

A `UserError` carries a message meant for the person who started the job: it names
the file, row, column or parameter and says how to fix it. Anything else that
escapes is an algorithm error (a bug or an environment problem). The SageMaker shell
turns the first into exit code 2 / HTTP 4xx and the second into exit code 1 / HTTP 500.
(tensor_files.UnreadableTensorFile, a ValueError, stays beside the reader that raises it; the predictor
reports it as an ArtifactError.)
Messages quote user input through `excerpt`, never in full.
"""

EXCERPT_CHARS = 40  # user input is quoted at most this long in errors (answers, logs, failure files)


def excerpt(text: str) -> str:
    """User input quoted for an error message: escaped, in single quotes, and at most EXCERPT_CHARS
    characters between the quotes (the last three '...' when it was cut), whatever the input holds:
    a 60 KB cell or a cell of control characters still gives a short, one-line quotation."""
    pieces = [_escaped(char) for char in text[:EXCERPT_CHARS + 1]]  # escapes only lengthen: no more can fit
    if len(text) <= EXCERPT_CHARS and sum(map(len, pieces)) <= EXCERPT_CHARS:
        return "'" + "".join(pieces) + "'"
    kept, size = [], 0
    for piece in pieces:
        if size + len(piece) > EXCERPT_CHARS - 3:
            break
        kept.append(piece)
        size += len(piece)
    return "'" + "".join(kept) + "...'"


def _escaped(char: str) -> str:
    """One character as it stands inside single quotes: printable as is, the rest as Python escapes."""
    if char == "'":
        return "\\'"
    return char if char.isprintable() and char != "\\" else repr(char)[1:-1]


class UserError(Exception):
    """Bad input from the user; the message says what and how to fix it."""


class HyperparameterError(UserError):
    """One or more hyperparameters are invalid; lists every problem at once."""

    def __init__(self, problems: list[str], valid_names: list[str]):
        self.problems = problems
        self.valid_names = valid_names
        lines = [f"Invalid hyperparameters ({len(problems)} problem{'s' if len(problems) > 1 else ''}):"]
        lines += [f"  - {p}" for p in problems]
        lines.append("Valid hyperparameters: " + ", ".join(valid_names) + ".")
        super().__init__("\n".join(lines))


class DataError(UserError):
    """Input data that cannot be used as a time series."""


class ArtifactError(UserError):
    """The model folder is missing, incomplete, unsafe or from an incompatible version."""


class TrainingStopped(Exception):
    """A stop was requested (SIGTERM) before the first epoch completed: there is nothing to save."""


class ClusterError(Exception):
    """A training job of several ranks lost one (it failed, was stopped, or cannot be reached) or could not
    start them all: neither the user's input nor a bug here, so exit code 1 with this reason, no traceback."""
