"""The Gymnasium environment, its evaluators and rewards."""
