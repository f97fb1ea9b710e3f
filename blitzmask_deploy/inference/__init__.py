"""Inference: preprocessing, runtimes behind one predict API, decode, dataset prediction, overlays."""
