"""Meters and probers: one module per measurement, each returning core result models."""
