"""Storage: the narrow Store protocol the vault keeps its state behind, and its implementations."""
