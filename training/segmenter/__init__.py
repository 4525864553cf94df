"""Keras ResNet-UNet lesion segmenter (TensorFlow process only)."""
