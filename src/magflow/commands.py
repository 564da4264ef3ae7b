"""The operator commands (sync, status, history, resume, ...), registered on the `magflow` app."""

from __future__ import annotations
