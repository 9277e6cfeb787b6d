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
    """A checkpoint is not in this project's safetensors + JSON format, or does not fit its model."""
