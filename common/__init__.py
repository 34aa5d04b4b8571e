"""What every part of MDAF shares: the project error, YAML-to-dataclass configs, atomic outputs."""
