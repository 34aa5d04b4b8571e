"""MDAF: the Mamba mixer and its scan back-ends, the Mamba4Rec branch, DCNv3 (and DCNv2), the gated
fusion head."""
