"""dig_stages: the code that runs inside the DIG workflow pods, as tested Python."""

__all__ = ["__version__"]
__version__ = "0.1.0"
