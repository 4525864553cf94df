"""The base floor of DermAssist: errors, settings, repository paths, the embedded-server launcher and its
config, the framework-import workarounds, logging and the image corpus.

``training/``, ``loadtest/``, the serving code and the command line import it; it imports nothing of
them (only ``preprocess``), and importing it pulls in no framework.
"""
