"""Middlewares wrapping each saga step's act."""
