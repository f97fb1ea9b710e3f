"""modeling/backbones."""
