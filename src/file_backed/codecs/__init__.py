"""Codecs turn objects into bytes and back; each is found by name through the
``file_backed.codecs`` entry point group (see `file_backed.available_codecs`)."""

from file_backed.codecs.base import Buffer, Codec

__all__ = ["Buffer", "Codec"]
