"""hepanav.margin."""
