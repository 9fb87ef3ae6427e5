"""dig_outputs: fetch, package and preview the outputs of a finished DIG run."""

__all__ = ["__version__"]
__version__ = "0.1.0"
