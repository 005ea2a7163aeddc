"""Datasets: LFW lists and a resumable landmark cache; the UV texture dataset."""
