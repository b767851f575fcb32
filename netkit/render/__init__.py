"""Rendering: Rich tables for people, JSON/JSONL/CSV for machines. Rich is imported lazily."""
