"""The 1998 paper's comparison, reproduced: ``lenet paper``.

- :mod:`lenet.paper.runner`: the Fig. 9 table (with rejection, Fig. 10, and cost per digit,
  Figs. 11-12), its neural rows trained through the sweep (a TrainConfig per run, each in a
  worker process) and its classical rows fitted here;
- :mod:`lenet.paper.rows`: the neural rows, the table's order and ``--list`` (no torch: the
  command line's help names the rows);
- :mod:`lenet.paper.table`: a row's figures from its seeds, and the Markdown table;
- :mod:`lenet.paper.classic`: the classical methods and hybrids of Fig. 9 (linear classifiers,
  nearest neighbours, PCA, RBF network, SVMs, the deslanted 20x20-300-10 net, LeNet-4 hybrids).
"""
