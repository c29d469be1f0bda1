"""The validate component: see README.md beside this file."""
