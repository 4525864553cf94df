"""DermAssist training: dataset readers, synthetic data, splits, the Keras ResNet-UNet segmenter,
the torchvision ResNet18 classifier, metrics, plots and the ``make models`` pipeline.

TensorFlow and PyTorch never meet in one process: the segmenter modules import TensorFlow, the
classifier modules import torch, and the pipeline runs each stage as its own subprocess. Every training
process applies the framework-import workarounds first (``dermassist.base.frameworks``): torch without its
``triton`` compiler package, TensorFlow's C++ start-up lines hidden.
"""
from dermassist.base.frameworks import quiet_tensorflow, without_triton_compiler

without_triton_compiler()
quiet_tensorflow()
