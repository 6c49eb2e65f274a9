"""Data sets, child training and evaluation."""
