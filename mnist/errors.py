"""Errors the library raises on bad input: each message says what was wrong and what to do."""


class MnistError(ValueError):
    """Base class: bad data, configuration, checkpoint or image. Safe to show to a user."""


class DataError(MnistError):
    """A data file is missing, truncated or corrupt."""


class DataNotFoundError(DataError, FileNotFoundError):
    """MNIST could not be found locally nor downloaded."""


class ConfigError(MnistError):
    """A training configuration value is out of range or unknown."""


class CheckpointError(MnistError):
    """A checkpoint is not in this project's safetensors + JSON format, or does not fit its model.

    The message is precise (for the command line and logs); `kind` says which of the KINDS below went
    wrong, so the app can explain it in plain words, and `detail` is the part of the message that is
    already plain words (e.g. which field of a .json disagrees with the weights), or "".
    """

    TOO_LARGE = "too-large"
    PICKLE = "pickle"  # a pickle or torch.save archive: never opened
    NOT_SAFETENSORS = "not-safetensors"  # unreadable, truncated, forged header, another format
    NO_DESCRIPTION = "no-description"  # bare weights and no .json
    BAD_DESCRIPTION = "bad-description"  # the description embedded in the weights is invalid
    BAD_JSON = "bad-json"  # the .json given beside the weights is invalid
    MISMATCH = "mismatch"  # the .json describes another run than the weights' embedded description
    WRONG_TENSORS = "wrong-tensors"  # names, shapes or dtypes do not fit the described architecture
    BAD_VALUES = "bad-values"  # NaN or infinite weights
    OTHER = "other"

    def __init__(self, message: str, kind: str = OTHER, detail: str = "") -> None:
        super().__init__(message)
        self.kind = kind
        self.detail = detail
