"""Pure curation logic: examples from every source, pairs, decontamination, balance, batching,
batch files and manifests. No broker or event loop is needed to test any of it."""
