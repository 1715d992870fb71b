"""hepanav.registry."""
