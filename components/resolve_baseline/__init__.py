"""The resolve_baseline component: see README.md beside this file."""
