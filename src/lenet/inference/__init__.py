"""Using trained weights: read real images the way MNIST was made
(:mod:`~lenet.inference.preprocess`, with the trace of every step), predict with torch or ONNX
Runtime (:mod:`~lenet.inference.predict`), export to ONNX (:mod:`~lenet.inference.export`) or to
a static page (:mod:`~lenet.inference.webexport`), serve the draw-a-digit app
(:mod:`~lenet.inference.serve`), and publish the bundled weights with their accuracy measured
again (:mod:`~lenet.inference.publish`); read whole numbers, zip codes and amounts
(:mod:`~lenet.inference.read`)."""
