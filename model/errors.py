"""Domain errors: one hierarchy, mapped to HTTP in serving/errors.py and to exit codes in the CLI."""


class HuyingError(Exception):
    """Base of every error Huying raises on purpose. The message says what was wrong and how to fix it."""


class TaxonomyError(HuyingError):
    """A duty-list file is malformed; the message names the file and line of each problem."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid duty list:\n  " + "\n  ".join(problems))


class DataError(HuyingError):
    """Input data (a dataset file, a dataset config, a row) cannot be read as described."""


class BundleError(HuyingError):
    """A model bundle is missing a part or its parts disagree."""


class ModelOutputError(HuyingError):
    """The model gave outputs that cannot be trusted (NaN or infinite): nothing is dispatched."""


class SimilarityIndexError(HuyingError):
    """The similarity index was used inconsistently (wrong dimension, other model version)."""


class NotFound(HuyingError):
    """A referenced object (complaint, review item, model version) does not exist."""


class Conflict(HuyingError):
    """The request conflicts with the current state (item claimed by someone else, duplicate id)."""


class InvalidInput(HuyingError):
    """A value given by a caller is invalid; `field` names it."""

    def __init__(self, message: str, field: str | None = None):
        self.field = field
        super().__init__(message)
