"""MDAF: its sequential branch, its static branch (DCNv3 or DCNv2) and the gated fusion head. The
Mamba layers it shares with the next-item models live in models/ssm/."""
