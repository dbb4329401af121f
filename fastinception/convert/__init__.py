"""Swap the Inception blocks of an existing model for ``FastInception``, recognised by structure."""
from .report import ConversionReport, ConvertedBlock, SkippedBlock
from .walk import convert, survey

__all__ = ["ConversionReport", "ConvertedBlock", "SkippedBlock", "convert", "survey"]
