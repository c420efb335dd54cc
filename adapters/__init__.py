"""Adapters: the transports (HTTP API, federation protocol) and the storage behind one interface."""
