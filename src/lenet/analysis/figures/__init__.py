"""The pictures and reports of :mod:`lenet.analysis`: PNG figures, text and HTML reports.

Every figure is a bare ``matplotlib.figure.Figure`` on its own Agg canvas, never drawn through
pyplot or the global backend, so that a notebook or another program keeps its matplotlib state.
The pieces:

- :mod:`lenet.analysis.figures.plots`: every figure (curves, kernels, feature maps, grids,
  galleries, error against rejection), also written as a PNG when given a path;
- :mod:`lenet.analysis.figures.evaluation_report`: what ``lenet evaluate`` reports, as JSON or
  text, with its confusion and misclassified-digits PNGs;
- :mod:`lenet.analysis.figures.run_report`: ``lenet report``, one self-contained ``report.html``;
- :mod:`lenet.analysis.figures.robustness_plots`: the curves and examples of ``lenet robustness``;
- :mod:`lenet.analysis.figures.compare`: ``lenet compare``, runs side by side.

The commands themselves (parse, call, print) are in :mod:`lenet.commands`; the trainer's
TensorBoard logger is :mod:`lenet.training.tensorboard`.
"""
