"""Visualizers (mmpretrain's ``UniversalVisualizer`` is reachable through the parent registry)."""
