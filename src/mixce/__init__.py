"""MixCE reproduction workflow: all logic that the Snakemake rules call."""

__version__ = "0.1.0"
