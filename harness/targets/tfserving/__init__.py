"""The tfserving target: see target.py (lifecycle and deploy interface) and kit.py (helpers scenarios use)."""
