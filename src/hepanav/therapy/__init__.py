"""hepanav.therapy."""
