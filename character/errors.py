"""Errors the CLI turns into one stderr line and a non-zero exit.

Every message should name the key, the bad value and the fix, e.g.
"dpo.beta must be > 0, got -0.1: set dpo.beta to a positive number (paper: 0.1)".
Usage and configuration problems exit 2; everything that fails while running exits 1.
"""

from __future__ import annotations


class CharacterError(Exception):
    """Base class: a problem the user can act on. Exit code 1."""

    exit_code = 1


class ConfigError(CharacterError):
    """Bad configuration, preset, flag or input file. Exit code 2."""

    exit_code = 2


class UsageError(CharacterError):
    """Bad command-line usage (unknown persona, missing file). Exit code 2."""

    exit_code = 2


class DataError(CharacterError):
    """Data that cannot be used: zero kept rows, a torn file, a failed data gate."""


class GateError(DataError):
    """A data gate or kill criterion stopped a stage; the message carries the numbers."""


class TrainingAborted(CharacterError):
    """A health gate stopped training (non-finite loss, flat loss, dead DPO signal)."""


class VerificationError(CharacterError):
    """A saved checkpoint does not reproduce the metrics the trainer reported."""


class BackendError(CharacterError):
    """A generation backend failed (server down, wrong model served, retries exhausted)."""


class BudgetExceeded(CharacterError):
    """The --budget-usd cap was reached; everything generated so far is kept."""
