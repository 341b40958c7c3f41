"""Loss terms. Each returns a dict of named, unweighted losses; weights live in the config."""
