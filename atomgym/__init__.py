"""atomgym: a Gymnasium environment for Linux watermark tuning under GFP_ATOMIC pressure."""
__version__ = "0.1.0"
