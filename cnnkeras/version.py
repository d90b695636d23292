"""The version of cnnkeras (one place: the package root and reports read it here)."""

__version__ = "0.1.0"
