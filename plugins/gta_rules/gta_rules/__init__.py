"""GTA rule pack: extra generation rules and pruning constraints."""
