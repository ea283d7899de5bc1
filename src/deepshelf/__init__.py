"""deepshelf: a deep-learning recommendation system for online shops."""
__version__ = "0.1.0"
