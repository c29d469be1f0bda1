"""The ingest component: see README.md beside this file."""
