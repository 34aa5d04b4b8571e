"""Raw Taobao downloads (or the synthetic generator) to leak-free, time-split training data."""
