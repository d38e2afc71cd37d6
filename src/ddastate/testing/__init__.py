"""Test helpers usable by ddastate users and its own tests."""
