"""The evaluate component: see README.md beside this file."""
