"""The transform component: see README.md beside this file."""
