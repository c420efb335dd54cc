"""Simpul node: the domain (events, tickets, lifecycle, routing, merge) and its services."""
