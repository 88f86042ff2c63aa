"""Kept for users of the original release who run `python setup.py develop`; the metadata lives in pyproject.toml."""

from setuptools import setup

setup()
