"""Console scripts; each module is one command."""
