"""GPU launch enforcer: export-control enforcement for cloud GPU launches."""

__version__ = "0.1.0"
