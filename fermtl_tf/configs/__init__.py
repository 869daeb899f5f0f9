"""Configs shipped inside the package (the demo's)."""
