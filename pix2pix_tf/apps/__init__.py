"""Applications on a trained or exported generator: predict (the command line) and the browser demo."""
