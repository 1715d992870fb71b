"""hepanav.imaging."""
