"""agents_core: persistence for AI agent services (see ``agents_core.db``)."""

__version__ = "0.1.0"

__all__ = ["__version__"]
