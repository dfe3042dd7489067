"""The curator: turns triaged traces, labels and preferences into SFT, DPO and eval examples,
and cuts versioned, content-addressed training batches (see README.md in this folder)."""
