"""Rivet actors in Python: definitions, the instance runtime and its startup subsystems."""
