"""The pure core: stdlib only, imported by every stage."""
