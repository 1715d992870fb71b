"""hepanav.planning."""
