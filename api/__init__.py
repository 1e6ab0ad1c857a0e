"""api: placeholder package; built by a later issue (see the README's roadmap)."""
