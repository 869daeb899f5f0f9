"""SynthFace writers of benchmark datasets' native on-disk layouts (test fixtures)."""
