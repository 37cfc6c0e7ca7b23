"""The shipped implementation families: each module registers itself with convbench on import."""
