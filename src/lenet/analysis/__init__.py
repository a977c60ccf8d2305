"""Reading a trained model: how well it does, what is inside it, and the pictures of both.

Layer-wise, analysis sits above :mod:`lenet.models` and :mod:`lenet.data` and below training
and inference, which use it (training evaluates each epoch with :mod:`~lenet.analysis.evaluate`;
serve traces activations with :mod:`~lenet.analysis.activations`). The modules:

- :mod:`lenet.analysis.evaluate`: accuracy and loss of a model or a saved run on a test set,
  the rejection curve of the 1998 paper's Fig. 10 and the seconds per digit of Fig. 12;
- :mod:`lenet.analysis.metrics`: confusion matrix, per-class precision/recall/F1, top confusions;
- :mod:`lenet.analysis.robustness`: test accuracy under each distortion (``lenet robustness``);
- :mod:`lenet.analysis.summary`: per-layer shapes, parameters and connections (``lenet summary``);
- :mod:`lenet.analysis.activations`: every layer's activations for one input, for any model;
- :mod:`lenet.analysis.modules`: the layers worth drawing (convolutions, subsampling, RBF codes);
- :mod:`lenet.analysis.figures`: the figures and reports drawn from all of the above.
"""
