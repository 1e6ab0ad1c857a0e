"""kgforge: the command line and composition root (the `kgforge` console script)."""
