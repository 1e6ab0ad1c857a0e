"""Models kgforge trains or loads: the MiniLM text encoder and the saved-model folder convention."""
