"""kdscale: how much teacher-written data does a small student need?"""

__version__ = "0.1.0"
