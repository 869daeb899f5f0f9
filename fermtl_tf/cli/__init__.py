"""Command-line entry points: fermtl-prep, fermtl-train, fermtl-eval, fermtl-demo."""
