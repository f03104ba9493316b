"""ftserver's version: a module that imports nothing, so that any module can name the
version without importing the package (whose lazy attributes import the server)."""

__version__ = "0.1.0"
