"""hepanav.phantoms."""
