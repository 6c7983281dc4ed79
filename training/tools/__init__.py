"""Tools around training: fetching the data sets, packing them for a GPU session (and the
session's script), measuring training throughput, and plotting a run's curves."""
