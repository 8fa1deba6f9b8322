"""Built-in baseline scorers and methods (a plugin like any other)."""
