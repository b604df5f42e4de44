"""How the factory and user workers are started (see workers/README.md)."""
