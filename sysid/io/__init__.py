"""Files in and out: datasets, checkpoints, safe torch loading, atomic outputs, the embedded default."""
