"""advlogits: the library behind the executable book on logit distributions of adversarially-trained networks."""

__version__ = "0.1.0"
