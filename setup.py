"""Shim so that tools which still call ``setup.py`` find the setup.cfg metadata."""

from setuptools import setup

setup()
