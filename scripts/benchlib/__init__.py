"""Shared code of ``scripts/bench`` and ``scripts/soak`` (not part of the simpul package).

- ``common``: paths, the sample data, process memory, tables;
- ``gen``: complaints of the sample's shape, in any number;
- ``backlog``: a node's signed backlog, built offline through the real code path;
- ``ceiling``: the machine's own limits (Ed25519 verification, batched inserts);
- ``intake`` / ``drain``: the benchmark's measured figures;
- ``soak`` / ``soak_check``: the fault-injecting soak and its convergence checks.
"""
