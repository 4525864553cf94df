"""DICOM interoperability (the ``dicom`` extra): read dermoscopy DICOM, write SEG and SR, run a DICOM node.

Install with ``pip install './client[dicom]'`` from the checkout. Nothing here is imported by the core SDK.
"""
