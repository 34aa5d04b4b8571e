"""Next-item recommenders: the neural ones (Mamba4Rec, MambaRec, SASRec, GRU4Rec) on one item
embedding, scored by the dot product or the repeat-explore head; and the lists fitted by counting
(popularity, the user's recent items, item co-occurrence kNN)."""
