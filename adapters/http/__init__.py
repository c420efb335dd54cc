"""The node's HTTP side: the public JSON API, the federation endpoints and the admin console."""
