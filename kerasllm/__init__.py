"""kerasllm: from raw text to a served language model with TensorFlow and Keras.

Importing the package is cheap: TensorFlow is only loaded by the modules that
need it, so `kerasllm --help` answers at once.
"""

from kerasllm.version import __version__  # noqa: F401

# Registers the built-in tasks in kerasllm.task_registry, so that every
# module that asks the registry (config validation, the trainer, loading,
# evaluation, export) finds them however kerasllm was entered. Cheap: the
# task modules import TensorFlow only inside their methods.
from kerasllm import tasks as _tasks  # noqa: E402,F401
