"""The package version (its own module, so that no submodule imports the package root)."""

__version__ = "0.1.0"
