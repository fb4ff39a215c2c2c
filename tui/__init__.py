"""molehill command line and dashboard (the only package that may import Textual)."""
