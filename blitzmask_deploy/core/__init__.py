"""Core: errors, mask codecs, export manifest, model cards and checkpoint files; imports no other part."""
