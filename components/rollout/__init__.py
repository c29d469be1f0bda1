"""The rollout component: see README.md beside this file."""
