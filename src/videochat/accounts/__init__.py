"""Accounts: guests, registered users, passwords and tokens."""
