"""The detector's core: records, the detector, and the compiled kernels it runs."""
