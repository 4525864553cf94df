"""Synthetic dermoscopy: class appearance, a fast vectorised renderer, the dataset writer and a sample grid."""
