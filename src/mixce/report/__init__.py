"""Reporting helpers: LaTeX tables and figures reproducing the paper."""
