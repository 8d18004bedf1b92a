"""Evaluation metrics (mmpretrain's ``Accuracy`` and friends are reachable through the parent registry)."""
