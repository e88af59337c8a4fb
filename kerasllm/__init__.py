"""kerasllm: from raw text to a served language model with TensorFlow and Keras.

Importing the package is cheap: TensorFlow is only loaded by the modules that
need it, so `kerasllm --help` answers at once.
"""

__version__ = "0.1.0"
