"""The package version: the single source (pyproject.toml reads it from here)."""

VERSION = "0.1.0"
