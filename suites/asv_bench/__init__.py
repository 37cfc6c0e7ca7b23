"""asv benchmarks of convbench: every registered implementation on a subset of the catalogue."""
