"""Small bundled data sets and reference models."""
