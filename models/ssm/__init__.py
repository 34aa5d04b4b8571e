"""The sequence layers both tasks share: the Mamba mixer with its scan and convolution back-ends,
Mamba4Rec's layer, MambaRec's hybrid layer and per-user streaming states."""
