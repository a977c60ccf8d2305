"""The draw-a-digit web app and its JSON API (:mod:`lenet.inference.serve.app`, run by `lenet
serve`).

Importing this package imports nothing else: FastAPI and uvicorn load with
:mod:`lenet.inference.serve.app`,
so the rest of lenet works without the `serve` extra.
"""
