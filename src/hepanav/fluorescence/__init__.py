"""hepanav.fluorescence."""
