"""Error types shared by the config layer and the methods (kept free of TensorFlow)."""


class ConfigError(ValueError):
    """A config problem; the message names the file and the key."""
