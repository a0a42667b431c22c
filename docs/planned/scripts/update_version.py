"""Placeholder for seed 1.4's update_version.py: records the version the stack is built from."""
import sys

print("version", sys.argv[1] if len(sys.argv) > 1 else "unknown")
