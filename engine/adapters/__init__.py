"""Adapters to external clients (imported lazily)."""
