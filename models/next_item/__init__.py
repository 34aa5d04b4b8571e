"""Next-item recommenders (Mamba4Rec, SASRec, GRU4Rec) on one item embedding and one scoring layer."""
