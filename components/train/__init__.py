"""The train component: see README.md beside this file."""
