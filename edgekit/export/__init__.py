"""Writers from the IR to other formats (TFLite, for cross-checking in other runtimes)."""
