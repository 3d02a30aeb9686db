"""The SecantusDB of our own suite (``tests/conftest.py``): started once, or ``MONGODB_URI``."""

from tests.conftest import wire_uri

__all__ = ["wire_uri"]
