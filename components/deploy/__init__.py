"""The deploy component: see README.md beside this file."""
