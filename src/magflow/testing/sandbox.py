"""pytest fixtures for the eMAG marketplace sandbox (filled in as the sandbox lands)."""

from __future__ import annotations
