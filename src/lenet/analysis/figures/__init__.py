"""See inside a run: evaluation reports, plots, TensorBoard logging, an HTML report, comparisons.

Every submodule imports matplotlib only when a plot is drawn, so importing ``lenet`` or
``lenet.analysis.figures`` stays light; figures are drawn on their own Agg canvas, never through
pyplot or the
global backend. The pieces:

- :mod:`lenet.analysis.metrics`: confusion matrix, per-class precision/recall/F1, top confusions;
- :mod:`lenet.analysis.figures.evaluation_report`: what ``lenet evaluate`` reports, as JSON or text;
- :mod:`lenet.analysis.modules`: the layers worth drawing in any model;
- :mod:`lenet.analysis.figures.plots`: every figure (curves, kernels, feature maps, grids,
galleries), as a
  ``matplotlib.figure.Figure``, also written as a PNG when given a path;
- :mod:`lenet.analysis.figures.run_report`: ``lenet report``, one self-contained ``report.html``;
- :mod:`lenet.analysis.figures.compare`: ``lenet compare``;
- :mod:`lenet.training.tensorboard`: the trainer's TensorBoard logger.

The ``evaluate``, ``report`` and ``compare`` commands themselves are in :mod:`lenet.commands`.
"""
