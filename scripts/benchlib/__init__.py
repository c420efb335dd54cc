"""Shared code of ``scripts/bench`` and ``scripts/soak`` (not part of the simpul package).

- ``bootstrap``: run under the repository's .venv;
- ``common``: paths, the sample data, process memory and CPU, tables;
- ``setup``: the sample federation, initialised and enrolled as an operator would;
- ``gen``: complaints of the sample's shape, in any number;
- ``backlog``: a node's signed backlog, built offline through the real code path;
- ``ceiling``: the machine's own limits (Ed25519 verification, batched inserts);
- ``intake`` / ``drain``: the benchmark's measured figures; ``bench``: its driver;
- ``profiling``: optional py-spy profiles of the node processes;
- ``soak`` / ``soak_check``: the fault-injecting soak and its convergence checks.
"""
