"""Baselines on MDAF's embedding layer: BST, DIN, AutoInt+, DNN."""
