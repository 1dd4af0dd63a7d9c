"""dlbox: deep learning that runs the same on any machine."""

__version__ = "0.1.0"
